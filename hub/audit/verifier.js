/* SPE evidence pack verifier, for the auditor's browser.
 *
 * An independent implementation of docs/audit-format.md (it shares no code with the Python
 * verifier in hub/audit): it reads an spe-audit-pack/1 file (JSON lines or CSV), checks every
 * checkpoint's Ed25519 signature with WebCrypto, recomputes each event's content hash and
 * chain link with SHA-256, and names the first damaged event with the kind of damage.
 * Optionally: a pinned operator public key, and saved transparency register snapshots whose
 * published checkpoint hashes (anchors) the chain must match.
 *
 * Nothing is sent anywhere: the page makes no request after it has loaded.
 * API: SPEAudit.verifyPackText(text, {pinnedKey, registers}) -> Promise<result>.
 */
"use strict";
(function (global) {
  const FORMAT = "spe-audit-pack/1";
  const FIELDS = ["schema_version", "ts", "actor", "role", "action", "permit_id", "object_id", "outcome", "detail"];
  const CSV_COLUMNS = ["type", "seq", "prev_hash", "hash", "content_hash", ...FIELDS, "kind", "algorithm", "key_id",
    "signature", "extra"];
  const SEP = "\u001f";
  const NUL = "\u001e";
  const LOOKAHEAD = 256;
  const utf8 = new TextEncoder();

  class Invalid extends Error {}

  function hex(buf) {
    return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function unhex(text) {
    if (typeof text !== "string") throw new Invalid("not hexadecimal");
    const s = text.replace(/\s+/g, "");
    if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) return null;
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }

  async function sha256Hex(text) {
    return hex(await crypto.subtle.digest("SHA-256", utf8.encode(text)));
  }

  function asciiOnly(value, what) {
    if (typeof value !== "string" || /[^\x00-\x7f]/.test(value)) throw new Invalid(`${what} is not ASCII text`);
    return value;
  }

  function toInt(value, what) {
    const n = typeof value === "number" ? value : (typeof value === "string" && /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : NaN);
    if (!Number.isInteger(n)) throw new Invalid(`${what} is not an integer: ${JSON.stringify(value)}`);
    return n;
  }

  // --- reading a pack -------------------------------------------------------------------------

  function parseCsv(text) {
    // RFC 4180: quoted fields may hold commas, quotes ("") and line breaks.
    const rows = [];
    let row = [], field = "", i = 0, quoted = false, any = false;
    while (i < text.length) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
          quoted = false; i++; continue;
        }
        field += c; i++; continue;
      }
      if (c === '"') { quoted = true; any = true; i++; continue; }
      if (c === ",") { row.push(field); field = ""; any = true; i++; continue; }
      if (c === "\r" || c === "\n") {
        if (any || field !== "") { row.push(field); rows.push(row); }
        row = []; field = ""; any = false;
        i += (c === "\r" && text[i + 1] === "\n") ? 2 : 1;
        continue;
      }
      field += c; any = true; i++;
    }
    if (quoted) throw new Invalid("the CSV ends inside a quoted field");
    if (any || field !== "") { row.push(field); rows.push(row); }
    return rows;
  }

  function readRecords(text) {
    if (text.startsWith("type,")) {
      const rows = parseCsv(text).slice(1);
      return rows.map((row) => {
        const rec = {};
        CSV_COLUMNS.forEach((k, i) => { if (i < row.length && row[i] !== "") rec[k] = row[i]; });
        if (rec.extra !== undefined) {
          const extra = JSON.parse(rec.extra);
          delete rec.extra;
          Object.assign(rec, extra);
        }
        if (rec.seq !== undefined) rec.seq = toInt(rec.seq, "seq");
        return rec;
      });
    }
    return text.split(/\r\n|\n|\r/).filter((line) => line.trim() !== "").map((line) => {
      const rec = JSON.parse(line);
      if (rec === null || typeof rec !== "object" || Array.isArray(rec)) throw new Invalid("a line is not a JSON object");
      return rec;
    });
  }

  // --- hashes and signatures ------------------------------------------------------------------

  async function contentHash(rec) {
    const parts = FIELDS.map((f) => (rec[f] === undefined || rec[f] === null) ? NUL : String(rec[f]));
    return sha256Hex(parts.join(SEP));
  }

  async function linkHash(prev, content) {
    return sha256Hex(`${asciiOnly(prev, "prev_hash")}:${content}`);
  }

  function checkpointMessage(cp) {
    return utf8.encode(`spe-audit-checkpoint/1\n${cp.seq}\n${cp.hash}\n${cp.ts}\n${cp.kind}`);
  }

  async function keyId(raw) {
    return hex(await crypto.subtle.digest("SHA-256", raw)).slice(0, 16);
  }

  async function importKey(hexKey) {
    const raw = unhex(hexKey);
    if (raw === null || raw.length !== 32) return null;
    try {
      const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
      return { key, keyId: await keyId(raw) };
    } catch (err) {
      return null;
    }
  }

  /** A public key file ("spe-audit-ed25519 <hex> key_id=...") or the bare hex key. */
  function publicKeyHex(text) {
    const parts = String(text).trim().split(/\s+/);
    return parts[0] === "spe-audit-ed25519" && parts.length > 1 ? parts[1] : parts[0];
  }

  async function signatureOk(pub, cp) {
    if (cp.algorithm !== "ed25519" || cp.key_id !== pub.keyId) return false;
    const sig = typeof cp.signature === "string" ? unhex(cp.signature) : null;
    if (sig === null) return false;
    try {
      return await crypto.subtle.verify({ name: "Ed25519" }, pub.key, sig, checkpointMessage(cp));
    } catch (err) {
      return false;
    }
  }

  // --- anchors from saved register snapshots ---------------------------------------------------

  /** [{seq, hash}] from a saved register: its JSON (`audit_anchors`) or its HTML page. */
  function registerAnchors(text) {
    const out = [];
    const trimmed = String(text).trim();
    if (trimmed.startsWith("{")) {
      const doc = JSON.parse(trimmed);
      for (const a of doc.audit_anchors || []) out.push({ seq: toInt(a.seq, "anchor seq"), hash: String(a.hash) });
      return out;
    }
    const re = /data-anchor-seq="(\d+)"\s+data-anchor-hash="([0-9a-f]{64})"/g;
    let m;
    while ((m = re.exec(trimmed)) !== null) out.push({ seq: Number(m[1]), hash: m[2] });
    return out;
  }

  // --- the chain walk ---------------------------------------------------------------------------

  function damage(seq, kind, message) {
    return { seq, kind, message };
  }

  /** rows: [{seq, prev, hash, content}] in file order; checkpoints: Map seq -> hash. */
  async function walk(rows, checkpoints) {
    let prevHash = rows.length ? rows[0].prev : null;
    let prevPrev = null;
    let lastSeq = null;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (await linkHash(r.prev, r.content) !== r.hash) {
        return { damage: damage(r.seq, "edited", `event ${r.seq} was edited: its content does not match its hash`), lastSeq };
      }
      if (r.prev !== prevHash) {
        if (prevPrev !== null && r.prev === prevPrev) {
          return { damage: damage(lastSeq, "inserted", `event ${lastSeq} was inserted: event ${r.seq} links past it`), lastSeq };
        }
        const ahead = rows.slice(i + 1, i + 1 + LOOKAHEAD);
        if (ahead.some((b) => b.hash === r.prev)) {
          return { damage: damage(r.seq, "reordered", `event ${r.seq} is out of order: it links to a later event`), lastSeq };
        }
        if (ahead.length && ahead[0].prev === prevHash) {
          return { damage: damage(r.seq, "inserted", `event ${r.seq} was inserted: it links to no event and the next one links past it`), lastSeq };
        }
        if (ahead.some((b) => b.prev === prevHash)) {
          return { damage: damage(r.seq, "reordered", `event ${r.seq} is out of order: a later event links here`), lastSeq };
        }
        const missing = lastSeq !== null ? lastSeq + 1 : r.seq;
        return { damage: damage(missing, "deleted", `event(s) before ${r.seq} were deleted: its link points to a missing event`), lastSeq };
      }
      if (checkpoints.has(r.seq) && checkpoints.get(r.seq) !== r.hash) {
        return { damage: damage(r.seq, "rewritten", `event ${r.seq} does not match the signed checkpoint at ${r.seq}: the chain up to here was rewritten`), lastSeq };
      }
      prevPrev = prevHash; prevHash = r.hash; lastSeq = r.seq;
    }
    const last = lastSeq || 0;
    const beyond = [...checkpoints.keys()].filter((s) => s > last);
    if (beyond.length) {
      const cp = Math.min(...beyond);
      return { damage: damage(last + 1, "truncated", `the chain ends at event ${last} but a signed checkpoint covers event ${cp}: the tail was removed`), lastSeq };
    }
    return { damage: null, lastSeq };
  }

  // --- the pack ----------------------------------------------------------------------------------

  async function verifyPackText(text, options = {}) {
    let events = 0, stubs = 0, keyIdOf = null;
    const result = (ok, extra) => ({ ok, events, stubs, key_id: keyIdOf, damage: null, problem: null, ...extra });
    const bad = (problem) => result(false, { problem });
    try {
      const records = readRecords(text);
      const meta = records[0];
      if (!meta || meta.type !== "meta" || meta.format !== FORMAT) {
        return bad(`not an ${FORMAT} evidence pack (first record is not its meta record)`);
      }
      if (meta.algorithm !== "ed25519") return bad("only Ed25519-signed packs can be verified offline");
      const pub = typeof meta.public_key === "string" ? await importKey(meta.public_key) : null;
      if (pub === null) return bad("the pack's public key is malformed");
      if (options.pinnedKey) {
        const pinned = await importKey(publicKeyHex(options.pinnedKey));
        if (pinned === null) return bad("the pinned public key is malformed");
        if (pinned.keyId !== pub.keyId) {
          return bad(`the pack is signed by key ${pub.keyId}, not by the pinned operator key ${pinned.keyId}`);
        }
      }
      keyIdOf = pub.keyId;
      const checkpoints = [];
      const rows = [];
      let end = null;
      let started = false;
      for (const rec of records.slice(1)) {
        const kind = rec.type;
        if (kind === "checkpoint") {
          if (started) return bad("a checkpoint record appears after the events");
          checkpoints.push({ ...rec, seq: toInt(rec.seq, "checkpoint seq") });
          continue;
        }
        if (kind === "event" || kind === "stub") {
          if (!started) {
            for (const cp of checkpoints) {
              if (!(await signatureOk(pub, cp))) {
                return result(false, { damage: damage(cp.seq, "bad_signature",
                  `checkpoint at event ${cp.seq} (${cp.kind}, ${cp.ts}) does not carry a valid signature of operator key ${pub.keyId}: forged or altered`) });
              }
            }
            if (!checkpoints.length) return bad("the pack carries no signed checkpoint");
            started = true;
          }
          if (typeof rec.prev_hash !== "string" || typeof rec.hash !== "string") throw new Invalid("a chain row lacks its hashes");
          let content;
          if (kind === "event") {
            content = await contentHash(rec);
            events++;
          } else {
            if (typeof rec.content_hash !== "string") throw new Invalid("a stub lacks its content hash");
            content = rec.content_hash;
            stubs++;
          }
          rows.push({ seq: toInt(rec.seq, "seq"), prev: rec.prev_hash, hash: rec.hash, content });
          continue;
        }
        if (kind === "end") { end = rec; break; }
        return bad(`unknown record type ${JSON.stringify(kind === undefined ? null : kind)}`);
      }
      if (!started) return bad("the pack holds no events");
      const cpMap = new Map(checkpoints.map((c) => [c.seq, String(c.hash)]));
      const walked = await walk(rows, cpMap);
      if (walked.damage) return result(false, { damage: walked.damage });
      if (end === null) return bad("the pack is cut off: no end record");
      const endEvents = end.events === undefined ? -1 : toInt(end.events, "end events");
      const endStubs = end.stubs === undefined ? -1 : toInt(end.stubs, "end stubs");
      if (endEvents !== events || endStubs !== stubs) {
        return bad(`the end record counts ${end.events} events and ${end.stubs} stubs, the pack holds ${events} and ${stubs}`);
      }
      const anchor = meta.anchor_seq === undefined ? -1 : toInt(meta.anchor_seq, "anchor_seq");
      if (walked.lastSeq !== anchor || !cpMap.has(anchor)) {
        return bad(`the chain in the pack ends at ${walked.lastSeq}, not at its signed anchor ${anchor}`);
      }
      // Register anchors: published hashes of checkpoints; those inside the pack's range must match.
      const bySeq = new Map(rows.map((r) => [r.seq, r.hash]));
      const anchors = (options.registers || []).flatMap(registerAnchors).sort((a, b) => a.seq - b.seq);
      for (const a of anchors) {
        if (bySeq.has(a.seq) && bySeq.get(a.seq) !== a.hash) {
          return result(false, { damage: damage(a.seq, "rewritten",
            `event ${a.seq} does not match the hash the register published for it: the chain up to here was rewritten`) });
        }
      }
      return result(true, {});
    } catch (err) {
      return bad(`malformed record: ${err.name}: ${err.message}`);
    }
  }

  function describe(r) {
    if (r.ok) return `evidence pack verified: ${r.events} events (+${r.stubs} stubs) chained to a checkpoint signed by key ${r.key_id}`;
    if (r.damage) return `evidence pack DAMAGED at event ${r.damage.seq} (${r.damage.kind}): ${r.damage.message}`;
    return `evidence pack INVALID: ${r.problem}`;
  }

  global.SPEAudit = { verifyPackText, describe, registerAnchors, FORMAT };
})(typeof window !== "undefined" ? window : globalThis);
