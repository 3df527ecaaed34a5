"""Proof-of-Learning (Jia et al., S&P 2021): record, verify by partial replay, dispute."""
