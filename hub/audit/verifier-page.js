/* The verifier page's form: reads the chosen files locally and shows SPEAudit's verdict. */
"use strict";
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("result");
  out.className = "";
  out.textContent = "Checking…";
  const pack = document.getElementById("pack").files[0];
  if (!pack) { out.textContent = "Choose an evidence pack first."; return; }
  const registers = await Promise.all(Array.from(document.getElementById("registers").files, (f) => f.text()));
  const result = await SPEAudit.verifyPackText(await pack.text(), {
    pinnedKey: document.getElementById("key").value.trim() || null,
    registers,
  });
  let text = SPEAudit.describe(result);
  if (result.ok && !document.getElementById("key").value.trim()) {
    text += `\nnote: the pack's own key ${result.key_id} was used; paste the operator key you trust to pin it`;
  }
  out.textContent = text;
  out.className = result.ok ? "ok" : "bad";
  out.dataset.ok = String(result.ok);
  out.dataset.kind = result.damage ? result.damage.kind : (result.ok ? "" : "invalid");
  out.dataset.seq = result.damage ? String(result.damage.seq) : "";
});
