// mltrail dashboard: local times, the token, transitions through the API, the drop zone.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  // times: unix seconds in data-ts -> the visitor's local time
  document.querySelectorAll("time[data-ts]").forEach((t) => {
    const d = new Date(Number(t.dataset.ts) * 1000);
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.dateTime = d.toISOString(); }
  });
  // API token, kept in this browser only
  const KEY = "mltrail-token";
  const token = () => localStorage.getItem(KEY) || "";
  const showToken = () => { const s = $("#token-state"); if (s) s.textContent = token() ? "API token ✓" : "API token"; };
  if ($("#token-save")) {
    // the same token as a SameSite=Strict cookie: the node reads it for page views (GET) only
    const cookie = (v) => { document.cookie = "mltrail_token=" + encodeURIComponent(v) + "; Path=/; SameSite=Strict" + (v ? "" : "; Max-Age=0"); };
    $("#token-save").onclick = () => { const v = $("#token").value.trim(); localStorage.setItem(KEY, v); cookie(v); $("#token").value = ""; showToken(); $(".token").open = false; };
    $("#token-clear").onclick = () => { localStorage.removeItem(KEY); cookie(""); showToken(); };
  }
  showToken();
  async function call(method, url, body) {
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const r = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
    let data = {}; try { data = await r.json(); } catch (e) { /* not JSON */ }
    return { ok: r.ok, status: r.status, data };
  }
  function say(el, ok, text) { el.textContent = text; el.className = "result " + (ok ? "ok" : "bad"); }
  // transitions
  document.querySelectorAll("button.move").forEach((b) => {
    b.onclick = async () => {
      const out = $("#move-result");
      if (!token()) { say(out, false, "Set an API token first (top right)."); return; }
      document.querySelectorAll("button.move").forEach((x) => (x.disabled = true));
      const r = await call("POST", `/v1/artefacts/${b.dataset.id}/transitions`, { to_state: b.dataset.to });
      if (r.ok) { say(out, true, `Moved to ${b.dataset.to} in block ${r.data.block}.`); setTimeout(() => location.reload(), 700); }
      else { say(out, false, `Refused (${r.status}): ${r.data.error || "error"}`); document.querySelectorAll("button.move").forEach((x) => (x.disabled = false)); }
    };
  });
  // ledger check
  if ($("#run-check")) {
    $("#run-check").onclick = async () => {
      const out = $("#check-result");
      if (!token()) { say(out, false, "Set an API token first (top right)."); return; }
      const r = await call("POST", "/v1/ledger/check");
      if (r.ok) { say(out, r.data.ok, r.data.ok ? `ok: ${r.data.blocks} blocks, ${r.data.events} events` : `failed: ${r.data.error}`); }
      else { say(out, false, `Refused (${r.status}): ${r.data.error || "error"}`); }
    };
  }
  // drop zone: hash a local file and compare with the artefact's digest
  const drop = $("#drop");
  if (drop) {
    const expected = drop.dataset.digest;
    const out = $("#drop-result");
    async function check(file) {
      drop.className = "drop"; say(out, true, `Hashing ${file.name}…`); out.className = "result";
      let actual;
      const buf = await file.arrayBuffer();
      if (window.crypto && crypto.subtle) {
        const h = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
        actual = "sha256:" + Array.from(h, (x) => x.toString(16).padStart(2, "0")).join("");
      } else {  // not a secure context: let the node hash it
        const r = await fetch(`/v1/verify?digest=${encodeURIComponent(expected)}`, { method: "POST", body: buf });
        actual = (await r.json()).actual;
      }
      const ok = actual === expected;
      drop.className = "drop " + (ok ? "ok" : "bad");
      say(out, ok, ok ? `✓ ${file.name} matches: it is this artefact's content.`
                      : `✗ Mismatch: ${file.name} hashes to ${actual.slice(0, 23)}…, not ${expected.slice(0, 23)}…`);
    }
    ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); if (ev.dataTransfer.files[0]) check(ev.dataTransfer.files[0]); });
    $("#file").addEventListener("change", (ev) => { if (ev.target.files[0]) check(ev.target.files[0]); });
  }
})();
