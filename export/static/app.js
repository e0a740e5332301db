// The draw-a-digit page: strokes on a canvas, sent as PNG to /v1/predict while the person draws.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const guess = document.getElementById("guess");
const confidence = document.getElementById("confidence");
const prediction = document.getElementById("prediction");
const classes = document.getElementById("classes");
const statusLine = document.getElementById("status");
const modelSelect = document.getElementById("model");
const card = document.getElementById("drop-zone");
const TOP = 5;
const STROKE = 20; // of 280: MNIST's strokes are about 2 px of a 20 px digit

let drawing = false;
let last = null;
let hasInk = false;
let busy = false; // one request at a time; the newest drawing is sent when it returns
let dirty = false;
let picture = null; // a dropped or chosen file, sent as it is

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  picture = null;
  prediction.dataset.class = "";
  guess.textContent = "?";
  confidence.textContent = "draw something";
  classes.replaceChildren();
  say("");
}

function say(text, bad = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("bad", bad);
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
}

function line(a, b) {
  ctx.strokeStyle = "#111";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (e) => {
  if (picture) clearPad();
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  last = point(e);
  line(last, last);
  hasInk = true;
  e.preventDefault();
});

pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    line(last, p);
    last = p;
  }
  schedule();
});

function stop(e) {
  if (!drawing) return;
  drawing = false;
  if (pad.hasPointerCapture(e.pointerId)) pad.releasePointerCapture(e.pointerId);
  schedule();
}
pad.addEventListener("pointerup", stop);
pad.addEventListener("pointercancel", stop);

document.getElementById("clear").addEventListener("click", clearPad);

function schedule() {
  dirty = true;
  if (!busy) send();
}

function body() {
  if (picture) return Promise.resolve(picture);
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

async function send() {
  if (!dirty || (!hasInk && !picture)) return;
  dirty = false;
  busy = true;
  try {
    const blob = await body();
    const query = new URLSearchParams({ top: TOP });
    if (modelSelect.value) query.set("model", modelSelect.value);
    const response = await fetch(`/v1/predict?${query}`, {
      method: "POST",
      headers: { "Content-Type": blob.type || "application/octet-stream" },
      body: blob,
    });
    const answer = await response.json().catch(() => ({ error: `the service answered ${response.status}` }));
    if (!response.ok) {
      show([]);
      say(answer.error || `the service answered ${response.status}`, response.status !== 422 || !/empty/.test(answer.error || ""));
    } else {
      show(answer.predictions);
      say(picture ? `${picture.name || "picture"} · ${answer.model}` : answer.model);
    }
  } catch (err) {
    say(`no answer from the service (${err.message})`, true);
  } finally {
    busy = false;
    if (dirty) send();
  }
}

function show(predictions) {
  classes.replaceChildren();
  if (!predictions.length) {
    prediction.dataset.class = "";
    guess.textContent = "?";
    confidence.textContent = "";
    return;
  }
  const best = predictions[0];
  prediction.dataset.class = String(best.class);
  guess.textContent = best.label;
  guess.classList.toggle("long", best.label.length > 2); // Fashion-MNIST's "T-shirt/top"
  confidence.textContent = `${(100 * best.prob).toFixed(1)}% sure`;
  for (const p of predictions) {
    const li = document.createElement("li");
    li.dataset.class = String(p.class);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0.5, 100 * p.prob).toFixed(1)}%`;
    bar.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(100 * p.prob).toFixed(1)}%`;
    li.append(label, bar, pct);
    classes.append(li);
  }
}

function usePicture(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    say(`${file.name} is not a picture`, true);
    return;
  }
  clearPad();
  picture = file;
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    const scale = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * scale, h = img.height * scale;
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url); // the service still says why it cannot read it
  img.src = url;
  schedule();
}

document.getElementById("file").addEventListener("change", (e) => {
  usePicture(e.target.files[0]);
  e.target.value = "";
});
card.addEventListener("dragover", (e) => {
  e.preventDefault();
  card.classList.add("dragging");
});
card.addEventListener("dragleave", () => card.classList.remove("dragging"));
card.addEventListener("drop", (e) => {
  e.preventDefault();
  card.classList.remove("dragging");
  usePicture(e.dataTransfer.files[0]);
});

modelSelect.addEventListener("change", () => schedule());

async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    const answer = await response.json();
    for (const m of answer.models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.variant}, ${m.dataset})`;
      option.selected = m.default;
      modelSelect.append(option);
    }
    modelSelect.disabled = answer.models.length < 2;
  } catch (err) {
    say(`cannot list the models (${err.message})`, true);
  }
}

clearPad();
loadModels();
