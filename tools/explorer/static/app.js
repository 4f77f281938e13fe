// The explorer page: all state lives here in `view`; every frame request carries it.
// No framework and no CDN: the page must work offline.
"use strict";

const $ = (id) => document.getElementById(id);
const TAB = Math.random().toString(36).slice(2, 12);   // this tab's slider channel
let info = null;
let faces = [];                                        // [{id, name, status, ...}]
let view = {a: null, b: null, alpha: 0, kind: "lerp", easing: "linear", schedule: "uniform",
            arith: null, mix: null, edits: {}};
let committed = clone(view);
const history = [];                                    // earlier committed views, for undo
let seq = 0, inflight = false, pending = false;
let polling = null;
let mappedFaces = null;                                // ready faces the map last showed

function clone(x) { return JSON.parse(JSON.stringify(x)); }
function status(text) { $("status").textContent = text; }
function message(text) { $("message").textContent = text || ""; }

async function api(path, body, options = {}) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(body)};
  const r = await fetch(path, Object.assign(init, options));
  if (!r.ok) {
    let text = `${r.status} ${r.statusText}`;
    try { text = (await r.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return r;
}

// ------------------------------------------------------------------ undo

function commit() {
  if (JSON.stringify(view) === JSON.stringify(committed)) return;
  history.push(committed);
  if (history.length > 100) history.shift();
  committed = clone(view);
}

function undo() {
  if (!history.length) { message("nothing to undo"); return; }
  view = history.pop();
  committed = clone(view);
  syncControls();
  requestRender();
}

// ------------------------------------------------------------------ frames

async function requestRender() {
  if (!view.a) return;
  if (inflight) { pending = true; return; }     // coalesce: only the newest position is sent next
  inflight = true; pending = false;
  const mySeq = ++seq;
  const sent = clone(view);
  try {
    const r = await fetch("/api/render", {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify({tab: TAB, seq: mySeq, view: sent})});
    if (r.status === 200) {
      const url = URL.createObjectURL(await r.blob());
      const img = $("frame");
      const old = img.src;
      img.onload = () => { if (old.startsWith("blob:")) URL.revokeObjectURL(old); };
      img.src = url;
      img.dataset.view = JSON.stringify(sent);
      img.dataset.seq = String(mySeq);
      message("");
    } else if (r.status !== 204) {
      let text = `${r.status}`;
      try { text = (await r.json()).error; } catch (e) { /* not JSON */ }
      message(text);
    }
  } catch (e) {
    message(String(e.message || e));
  } finally {
    inflight = false;
    $("frame").dataset.busy = pending ? "1" : "0";
    if (pending) requestRender();
  }
}

async function download(path, name) {
  if (!view.a) { message("add a face first"); return; }
  try {
    const r = await api(path, {view});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  } catch (e) { message(e.message); }
}

// ------------------------------------------------------------------ faces

function faceName(id) { const f = faces.find((x) => x.id === id); return f ? f.name : ""; }

function fillSelect(select, items, value, blank) {
  select.textContent = "";
  if (blank !== undefined) select.add(new Option(blank, ""));
  for (const f of items) select.add(new Option(f.name, f.id));
  select.value = value || "";
}

function renderFaceList() {
  const list = $("face-list");
  for (const f of faces) {
    let card = list.querySelector(`[data-id="${CSS.escape(f.id)}"]`);
    if (!card) {
      card = document.createElement("div");
      card.className = "face";
      card.dataset.id = f.id;
      card.innerHTML = '<img class="aligned" alt="aligned"><img class="recon" alt="reconstruction">' +
        '<div><div class="name"></div><div class="state"></div><div class="row">' +
        '<button type="button" class="set-a">A</button><button type="button" class="set-b">B</button></div></div>';
      card.querySelector(".name").textContent = f.name;
      card.querySelector(".set-a").onclick = () => selectFace("a", f.id);
      card.querySelector(".set-b").onclick = () => selectFace("b", f.id);
      list.appendChild(card);
    }
    card.dataset.status = f.status;
    const base = `/api/faces/${encodeURIComponent(f.id)}`;
    const aligned = card.querySelector(".aligned"), recon = card.querySelector(".recon");
    if (f.has_aligned && !aligned.getAttribute("src")) aligned.src = `${base}/aligned.png`;
    if (f.has_reconstruction && !recon.getAttribute("src")) recon.src = `${base}/reconstruction.png`;
    if (!f.has_aligned) aligned.hidden = f.status === "ready" || f.status === "error";
    const state = card.querySelector(".state");
    state.className = "state" + (f.status === "error" ? " err" : "");
    if (f.status === "ready") state.textContent = f.cached ? "ready (cached)" : "ready";
    else if (f.status === "error") state.textContent = f.error;
    else { state.innerHTML = '<span class="spinner"></span> '; state.append(f.status + "…"); }
    card.querySelectorAll("button").forEach((b) => { b.disabled = f.status !== "ready"; });
    card.classList.toggle("selected-a", view.a === f.id);
    card.classList.toggle("selected-b", view.b === f.id);
  }
}

function syncFaceSelects() {
  const ready = faces.filter((f) => f.status === "ready");
  fillSelect($("face-a"), ready, view.a, "—");
  fillSelect($("face-b"), ready, view.b, "— (A only)");
  fillSelect($("mix-face"), ready, view.mix ? view.mix.face : "", "—");
  fillSelect($("arith-b"), ready, view.arith ? view.arith.b : "", "—");
  fillSelect($("arith-c"), ready, view.arith ? view.arith.c : "", "—");
}

async function refreshFaces() {
  try {
    faces = (await (await api("/api/faces")).json()).faces;
  } catch (e) { message(e.message); return; }
  const ready = faces.filter((f) => f.status === "ready");
  let changed = false;
  if (!view.a && ready.length) { view.a = ready[0].id; changed = true; }
  if (!view.b && ready.length > 1) { const other = ready.find((f) => f.id !== view.a); view.b = other.id; changed = true; }
  renderFaceList();
  syncFaceSelects();
  const busy = faces.filter((f) => f.status !== "ready" && f.status !== "error").length;
  status(busy ? `encoding ${busy} face${busy > 1 ? "s" : ""}…` : "");
  if (changed) { committed = clone(view); requestRender(); }
  if (busy && !polling) polling = setInterval(refreshFaces, 400);
  if (!busy && polling) { clearInterval(polling); polling = null; }
  const known = ready.map((f) => f.id).join(",");
  if (known !== mappedFaces) { mappedFaces = known; refreshMap(); }   // new faces join the map
}

function added(r) { return r.json().then(() => refreshFaces()); }

async function uploadPhotos(ev) {
  ev.preventDefault();
  const files = $("photos").files;
  if (!files.length) { message("choose one or more photos first"); return; }
  const form = new FormData();
  for (const f of files) form.append("photos", f, f.name);
  try {
    await added(await api("/api/faces", undefined, {method: "POST", body: form}));
    $("photos").value = "";
  } catch (e) { message(e.message); }
}

function selectFace(slot, id) {
  view[slot] = id;
  commit();
  syncControls();
  requestRender();
}

// ------------------------------------------------------------------ controls

function syncControls() {
  $("alpha").value = Math.round(view.alpha * info.alpha_steps);
  $("alpha-value").textContent = view.alpha.toFixed(2);
  $("kind").value = view.kind; $("easing").value = view.easing; $("schedule").value = view.schedule;
  $("mix-layers").value = view.mix ? view.mix.layers : "";
  $("arith-on").checked = !!view.arith;
  if (view.arith) $("arith-scale").value = view.arith.scale;
  for (const input of document.querySelectorAll("#edits input[type=range]")) {
    const v = view.edits[input.dataset.direction] || 0;
    input.value = v;
    input.nextElementSibling.textContent = Number(v).toFixed(1);
  }
  syncFaceSelects();
  renderFaceList();
}

function readMix() {
  const face = $("mix-face").value, layers = $("mix-layers").value;
  view.mix = face && layers ? {face, layers} : null;
}

function readArith() {
  const b = $("arith-b").value, c = $("arith-c").value, scale = Number($("arith-scale").value);
  view.arith = $("arith-on").checked && b && c ? {b, c, scale: Number.isFinite(scale) ? scale : 1} : null;
  if ($("arith-on").checked && !(b && c)) message("choose B and C for the arithmetic");
}

function buildEdits() {
  const box = $("edits");
  box.textContent = "";
  if (!info.directions.length) { box.textContent = "no directions for this model"; return; }
  for (const d of info.directions) {
    const row = document.createElement("div");
    row.className = "edit";
    const label = document.createElement("label");
    label.textContent = d.name;
    label.title = d.source || "";
    const input = document.createElement("input");
    Object.assign(input, {type: "range", min: -3, max: 3, step: 0.1, value: 0});
    input.dataset.direction = d.name;
    input.id = `edit-${d.name}`;
    const out = document.createElement("output");
    out.textContent = "0.0";
    input.oninput = () => {
      const v = Number(input.value);
      if (v === 0) delete view.edits[d.name]; else view.edits[d.name] = v;
      out.textContent = v.toFixed(1);
      requestRender();
    };
    input.onchange = commit;
    row.append(label, input, out);
    box.appendChild(row);
  }
}

// ------------------------------------------------------------------ export

async function exportVideo() {
  const link = $("export-link"), bar = $("export-progress");
  link.hidden = true;
  let job;
  try {
    job = await (await api("/api/export", {view, steps: Number($("steps").value), fps: Number($("fps").value)})).json();
  } catch (e) { message(e.message); return; }
  bar.hidden = false; bar.max = job.total; bar.value = 0;
  $("export-status").textContent = "queued";
  const poll = async () => {
    try {
      job = await (await api(`/api/exports/${encodeURIComponent(job.id)}`)).json();
    } catch (e) { message(e.message); return; }
    bar.value = job.done;
    $("export-status").textContent = job.status === "error" ? job.error : `${job.status} ${job.done}/${job.total}`;
    if (job.status === "done") {
      link.href = job.url; link.hidden = false; bar.hidden = true;
      $("export-status").textContent = `done: ${job.total} frames in ${job.seconds} s`;
    } else if (job.status !== "error") setTimeout(poll, 300);
  };
  setTimeout(poll, 200);
}

// ------------------------------------------------------------------ map

async function refreshMap() {
  const svg = $("map");
  let data;
  try {
    data = await (await api(`/api/map?method=${encodeURIComponent($("map-method").value)}`)).json();
  } catch (e) { $("map-message").textContent = e.message; return; }
  $("map-message").textContent = data.message;
  svg.textContent = "";
  const NS = "http://www.w3.org/2000/svg";
  for (const p of data.points) {
    const x = p.x * 92, y = (1 - p.y) * 92, size = p.kind === "face" ? 9 : 7;
    const href = p.kind === "face" ? `/api/faces/${encodeURIComponent(p.id)}/reconstruction.png`
                                   : `/api/gallery/${p.index}.png`;
    const g = document.createElementNS(NS, "g");
    g.dataset.kind = p.kind;
    if (p.kind === "face") g.dataset.id = p.id; else g.dataset.index = p.index;
    const img = document.createElementNS(NS, "image");
    img.setAttribute("href", href);
    for (const [k, v] of Object.entries({x, y, width: size, height: size})) img.setAttribute(k, v);
    const rect = document.createElementNS(NS, "rect");
    for (const [k, v] of Object.entries({x, y, width: size, height: size})) rect.setAttribute(k, v);
    rect.setAttribute("class", p.kind);
    const title = document.createElementNS(NS, "title");
    title.textContent = p.name;
    g.append(img, rect, title);
    g.onclick = () => mapClick(p);
    svg.appendChild(g);
  }
}

async function mapClick(p) {
  const slot = $("map-target").value;
  if (p.kind === "face") { selectFace(slot, p.id); return; }
  try {
    const r = await api("/api/faces/gallery", {index: p.index});
    const face = (await r.json()).faces[0];
    await refreshFaces();
    selectFace(slot, face.id);
  } catch (e) { message(e.message); }
}

// ------------------------------------------------------------------ start

async function start() {
  try { info = await (await api("/api/info")).json(); } catch (e) { message(e.message); return; }
  $("model-info").textContent = `model ${info.model}, ${info.resolution} px, ${info.num_ws}×${info.w_dim} codes, ` +
    `${info.refine_steps} refinement steps`;
  for (const [id, items] of [["kind", info.kinds], ["easing", info.easings], ["schedule", info.schedules]]) {
    for (const v of items) $(id).add(new Option(v, v));
  }
  for (const g of Object.keys(info.layer_groups)) $("mix-layers").add(new Option(g, g));
  for (const ex of info.examples) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `Add ${ex.name}`;
    b.dataset.example = ex.index;
    b.onclick = async () => {
      try { await added(await api("/api/faces/example", {index: ex.index})); } catch (e) { message(e.message); }
    };
    $("examples").appendChild(b);
  }
  if (!info.can_encode) { $("upload").disabled = true; $("photos").disabled = true; }
  $("random").hidden = !info.has_sampler;
  $("random").onclick = async () => {
    try { await added(await api("/api/faces/random", {})); } catch (e) { message(e.message); }
  };
  buildEdits();
  $("upload-form").onsubmit = uploadPhotos;
  $("alpha").oninput = () => {
    view.alpha = Number($("alpha").value) / info.alpha_steps;
    $("alpha-value").textContent = view.alpha.toFixed(2);
    requestRender();
  };
  $("alpha").onchange = commit;
  for (const id of ["kind", "easing", "schedule"]) {
    $(id).onchange = () => { view[id] = $(id).value; commit(); requestRender(); };
  }
  $("face-a").onchange = () => { if ($("face-a").value) selectFace("a", $("face-a").value); };
  $("face-b").onchange = () => selectFace("b", $("face-b").value || null);
  for (const id of ["mix-face", "mix-layers"]) $(id).onchange = () => { readMix(); commit(); requestRender(); };
  for (const id of ["arith-on", "arith-b", "arith-c", "arith-scale"]) {
    $(id).onchange = () => { readArith(); commit(); requestRender(); };
  }
  $("reset-edits").onclick = () => { view.edits = {}; commit(); syncControls(); requestRender(); };
  $("undo").onclick = undo;
  $("download-png").onclick = () => download("/api/frame.png", "frame.png");
  $("download-npy").onclick = () => download("/api/code.npy", "code.npy");
  $("export").onclick = exportVideo;
  $("map-refresh").onclick = refreshMap;
  $("map-method").onchange = refreshMap;
  syncControls();
  await refreshFaces();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", start);
