"""Dashboard pages (placeholder)."""

from fastapi import APIRouter

router = APIRouter()
