// reliqa viewer: vanilla JS, no external resources. The server sends each attribute map as an
// 8-bit grey PNG (value = map * 255); this page colours it. Each attribute has its own colour
// (/api/info "colours"); at each pixel the strongest checked attribute is drawn, solid where it
// changes in its main direction in this image and striped where it goes the other way, alpha
// growing with the intensity 2|m - 0.5|. The strongest attributes are listed and drawn first.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { info: null, compare: null, selected: -1, base: null, maps: {}, size: [0, 0], order: [], main: {} };
const MORE = [214, 39, 40]; // the GMC heatmap's diverging colours: +1 red, -1 blue
const LESS = [33, 102, 172];
const STRIPE = 8; // period (pixels) of the stripes that mark the opposite direction
const VISIBLE = 0.1; // intensity below which a pixel is not counted in the legend's areas

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function formatScore(value) {
  if (value === null || value === undefined) return "—"; // JSON has no infinity: see the note
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude >= 1e4 || magnitude < 1e-3) ? value.toExponential(3) : value.toFixed(4);
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function loadPicture(url) {
  return new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => resolve(picture);
    picture.onerror = () => reject(new Error("cannot decode a picture from the server"));
    picture.src = url;
  });
}

// ---------------------------------------------------------------------------- compare

function compareForm() {
  const form = new FormData();
  const referenceFile = $("#reference-file").files[0];
  const rootReference = $("#root-reference").value;
  if (referenceFile) form.append("reference", referenceFile);
  else if (rootReference) form.append("reference_path", rootReference);
  else throw new Error("choose a reference image");
  const tests = Array.from($("#test-files").files);
  tests.forEach((file) => form.append("tests", file));
  Array.from($("#root-tests").selectedOptions).forEach((option) => form.append("test_paths", option.value));
  if (!form.has("tests") && !form.has("test_paths")) throw new Error("choose at least one test image");
  return form;
}

async function runCompare() {
  const button = $("#compare-button");
  button.disabled = true;
  try {
    const form = compareForm();
    setStatus("comparing…");
    state.compare = await api("/api/compare", { method: "POST", body: form });
    state.selected = -1;
    renderRanking();
    // open on the best candidate (the worst is one click away), not on the first upload
    await selectCandidate(candidateIndex(state.compare.best));
    $("#compare-results").hidden = false;
    setStatus(`compared ${state.compare.results.length} test image(s)`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function candidateIndex(name) {
  const named = state.compare.results.findIndex((entry) => entry.name === name);
  if (named >= 0) return named;
  const first = state.compare.results.findIndex((entry) => !entry.error && !entry.identical);
  return first >= 0 ? first : 0;
}

function renderRanking() {
  const { results, ranking, ranking_by: rankingBy } = state.compare;
  const metrics = [];
  results.forEach((entry) => Object.keys(entry.scores).forEach((name) => metrics.includes(name) || metrics.push(name)));
  const head = $("#ranking-head");
  head.replaceChildren(
    ...["rank", "image", "test"].map((name) => element("th", { text: name, scope: "col" })),
    ...metrics.map((name) => scoreHeader(name, state.compare.higher_is_better)),
    element("th", { text: "note", scope: "col" })
  );
  makeSortable($("#ranking"));
  $("#ranking-by").textContent = rankingBy ? `(by ${rankingBy})` : "";
  const body = $("#ranking tbody");
  body.replaceChildren();
  ranking.forEach((name, position) => {
    const index = results.findIndex((entry) => entry.name === name);
    const entry = results[index];
    const row = element("tr", { dataset: { index: String(index) } });
    if (entry.error) row.classList.add("failed");
    row.append(
      element("td", { class: "num", text: String(position + 1), dataset: { value: String(position + 1) } }),
      thumbCell(entry),
      element("td", { text: entry.name, dataset: { value: entry.name } }),
      ...metrics.map((metric) => {
        const value = entry.scores[metric];
        return element("td", {
          class: "num",
          text: formatScore(value),
          dataset: { metric, value: value === null || value === undefined ? "" : String(value) },
        });
      }),
      element("td", { text: [entry.error, ...(entry.notes || [])].filter(Boolean).join("; ") })
    );
    row.addEventListener("click", () => selectCandidate(index));
    body.append(row);
  });
}

function scoreHeader(name, directions) {
  // every score column says which way is better (NIQE and GMSD: lower), from the catalogue
  const higher = directions ? directions[name] : undefined;
  const arrow = higher === undefined ? "" : higher ? " ↑" : " ↓";
  const title = higher === undefined ? "" : higher ? "higher = better" : "lower = better";
  return element("th", { text: `${name}${arrow}`, scope: "col", title, dataset: { direction: title } });
}

function thumbCell(entry) {
  // an image that could not be read has no picture, only its error note
  return element("td", {}, entry.image ? [element("img", { class: "thumb", src: entry.image, alt: entry.name })] : []);
}

async function selectCandidate(index) {
  const again = index === state.selected; // same candidate (e.g. "show the reference"): keep the toggles
  state.selected = index;
  document.querySelectorAll("#ranking tbody tr").forEach((row) => {
    row.classList.toggle("selected", Number(row.dataset.index) === index);
  });
  const entry = state.compare.results[index];
  const showReference = $("#show-reference").checked || !entry.image;
  state.base = await loadPicture(showReference ? state.compare.reference.image : entry.image);
  state.size = [state.base.naturalWidth, state.base.naturalHeight];
  state.maps = {};
  state.main = {};
  if (entry.maps) {
    for (const [name, url] of Object.entries(entry.maps)) {
      state.maps[name] = greyValues(await loadPicture(url));
      state.main[name] = mainDirection(state.maps[name]);
    }
  }
  // the strongest attributes first (the server's attribute_strengths)
  const strength = entry.strength || {};
  state.order = [...state.info.attributes].sort((a, b) => (strength[b] || 0) - (strength[a] || 0));
  renderToggles(entry, again);
  renderSummary(entry);
  $("#overlay-caption").textContent = `${showReference ? state.compare.reference.name + " (reference)" : entry.name}`;
  redraw();
}

function greyValues(picture) {
  const [width, height] = state.size;
  const canvas = element("canvas", { width: String(width), height: String(height) });
  const context = canvas.getContext("2d");
  context.drawImage(picture, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  const values = new Uint8Array(width * height);
  for (let i = 0; i < values.length; i += 1) values[i] = rgba[4 * i];
  return values;
}

function mainDirection(values) {
  // +1 when the attribute mostly increases in this image, -1 when it mostly decreases
  let sum = 0;
  for (let i = 0; i < values.length; i += 1) sum += values[i] - 127.5;
  return sum >= 0 ? 1 : -1;
}

function directionWord(name, sign) {
  const [more, less] = state.info.directions[name];
  return sign > 0 ? more : less;
}

function renderToggles(entry, keep) {
  const fieldset = $("#attribute-toggles");
  const boxes = Array.from(fieldset.querySelectorAll("input[type=checkbox]"));
  // a new candidate opens on its dominant attributes (strongest first, at most three);
  // reselecting the same one keeps the user's choice
  const previous = keep && boxes.length ? new Set(boxes.filter((box) => box.checked).map((box) => box.value)) : null;
  const dominant = new Set(entry.dominant || []);
  fieldset.querySelectorAll("label, p, div").forEach((node) => node.remove());
  if (!entry.maps) {
    fieldset.append(element("p", { class: "note", text: entry.error || "distortion maps need the relational model (not available)" }));
    return;
  }
  const strength = entry.strength || {};
  for (const name of state.order) {
    const box = element("input", { type: "checkbox", id: `toggle-${name}`, value: name });
    box.checked = previous === null ? dominant.has(name) : previous.has(name);
    box.addEventListener("change", redraw);
    const value = strength[name] || 0;
    const swatch = element("span", { class: "swatch", style: `--colour:${state.info.colours[name]}` });
    const label = element("label", { title: `mean intensity ${value.toFixed(2)} (0 = no change … 1 = strongest)` }, [
      box, swatch, ` ${name}: ${directionWord(name, state.main[name])} `,
      element("span", { class: "strength", text: value.toFixed(2) }),
    ]);
    if (value < 0.05) label.classList.add("inactive");
    fieldset.append(label);
  }
  const buttons = element("div", { class: "toggle-buttons" }, [
    element("button", { type: "button", id: "toggles-dominant", text: "strongest only" }),
    element("button", { type: "button", id: "toggles-all", text: "all nine" }),
    element("button", { type: "button", id: "toggles-none", text: "none" }),
  ]);
  fieldset.append(buttons);
  const setAll = (keepName) => {
    fieldset.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = keepName(box.value); });
    redraw();
  };
  $("#toggles-dominant").addEventListener("click", () => setAll((name) => dominant.has(name)));
  $("#toggles-all").addEventListener("click", () => setAll(() => true));
  $("#toggles-none").addEventListener("click", () => setAll(() => false));
}

function renderSummary(entry) {
  // entry.summary: {attribute: {mean_signed: -1..1, area: 0..1}} from reliqa.compare
  const table = $("#summary");
  table.replaceChildren();
  if (!entry.summary) return;
  table.append(
    element("caption", { text: "per attribute: mean signed change (−1 less … +1 more) and changed area" }),
    element("tr", {}, ["attribute", "mean change", "area"].map((text) => element("th", { text })))
  );
  for (const name of state.order) {
    const summary = entry.summary[name];
    if (!summary) continue;
    table.append(
      element("tr", { id: `summary-${name}` }, [
        element("td", { text: name }),
        element("td", { class: "num", text: summary.mean_signed.toFixed(3) }),
        element("td", { class: "num", text: `${(100 * summary.area).toFixed(1)}%` }),
      ])
    );
  }
}

function hexColour(hex) {
  return [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
}

function redraw() {
  const canvas = $("#overlay");
  const [width, height] = state.size;
  if (!state.base || !width) return;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(state.base, 0, 0, width, height);
  const opacity = Number($("#opacity").value) / 100;
  $("#opacity-value").textContent = `${Math.round(opacity * 100)}%`;
  // strongest first, as listed
  const active = state.order.filter((name) => state.maps[name] && $(`#toggle-${name}`)?.checked);
  canvas.dataset.channels = active.join(",");
  const counts = Object.fromEntries(active.map((name) => [name, { main: 0, opposite: 0 }]));
  if (active.length) {
    const frame = context.getImageData(0, 0, width, height);
    const pixels = frame.data;
    const colours = active.map((name) => hexColour(state.info.colours[name]));
    const maps = active.map((name) => state.maps[name]);
    for (let i = 0; i < width * height; i += 1) {
      // the strongest checked attribute at this pixel is the one drawn: one colour per pixel
      let best = -1, bestIntensity = 0, signed = 0;
      for (let a = 0; a < maps.length; a += 1) {
        const value = (maps[a][i] - 127.5) / 127.5;
        if (Math.abs(value) > bestIntensity) { best = a; bestIntensity = Math.abs(value); signed = value; }
      }
      if (best < 0) continue;
      const opposite = Math.sign(signed) !== state.main[active[best]];
      if (bestIntensity >= VISIBLE) counts[active[best]][opposite ? "opposite" : "main"] += 1;
      const x = i % width, y = (i - x) / width;
      if (opposite && (x + y) % STRIPE >= STRIPE / 2) continue; // stripes: the other direction
      // sqrt keeps weak (intensity 0.2) changes visible while strong ones stay strongest
      const alpha = Math.sqrt(bestIntensity) * opacity;
      if (alpha < 0.02) continue;
      const colour = colours[best];
      for (let c = 0; c < 3; c += 1) pixels[4 * i + c] = pixels[4 * i + c] * (1 - alpha) + colour[c] * alpha;
    }
    if (opacity > 0) context.putImageData(frame, 0, 0);
  }
  renderLegend(active, counts, width * height);
}

function renderLegend(active, counts, total) {
  // what the colours on the picture mean, in words, with the share of the picture each covers
  const legend = $("#legend");
  legend.replaceChildren();
  if (!Object.keys(state.maps).length) return; // no maps (no relational model, or an error)
  if (!active.length) {
    legend.append(element("li", { class: "note", text: "no map selected: the bare image" }));
    return;
  }
  for (const name of active) {
    const colour = state.info.colours[name];
    const main = state.main[name];
    for (const [part, sign, css] of [["main", main, "swatch"], ["opposite", -main, "swatch striped"]]) {
      const share = total ? counts[name][part] / total : 0;
      if (part === "opposite" && share < 0.01) continue;
      legend.append(
        element("li", { dataset: { attribute: name, direction: part } }, [
          element("span", { class: css, style: `--colour:${colour}` }),
          ` ${name}: ${directionWord(name, sign)} (drawn over ${(100 * share).toFixed(0)}% of the picture)`,
        ])
      );
    }
  }
}

// ---------------------------------------------------------------------------- no-reference

async function runScore() {
  const button = $("#score-button");
  const files = Array.from($("#nr-files").files);
  if (!files.length) return setStatus("choose one or more images to score", true);
  button.disabled = true;
  try {
    const form = new FormData();
    files.forEach((file) => form.append("images", file));
    setStatus("scoring…");
    const answer = await api("/api/score", { method: "POST", body: form });
    const table = $("#nr-table");
    table.tHead.rows[0].replaceChildren(
      ...["image", "name"].map((name) => element("th", { text: name, scope: "col" })),
      ...answer.scorers.map((name) => scoreHeader(name, answer.higher_is_better)),
      element("th", { text: "note", scope: "col" })
    );
    makeSortable(table);
    table.tBodies[0].replaceChildren(
      ...answer.results.map((entry) =>
        element("tr", {}, [
          thumbCell(entry),
          element("td", { text: entry.name, dataset: { value: entry.name } }),
          ...answer.scorers.map((name) => {
            const value = entry.scores[name];
            return element("td", {
              class: "num",
              text: formatScore(value),
              dataset: { metric: name, value: value === null || value === undefined ? "" : String(value) },
            });
          }),
          element("td", { text: [...(entry.errors || []), ...(entry.notes || [])].join("; ") }),
        ])
      )
    );
    table.hidden = false;
    setStatus(`scored ${answer.results.length} image(s) with ${answer.scorers.join(", ") || "nothing"}`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------- GMC

async function readCsvHeader() {
  const file = $("#gmc-file").files[0];
  if (!file) return;
  const firstLine = (await file.slice(0, 65536).text()).split(/\r?\n/)[0];
  const columns = firstLine.split(",").map((name) => name.trim().replace(/^"|"$/g, ""));
  for (const [id, keep] of [["#gmc-score", false], ["#gmc-mos", false], ["#gmc-std", true]]) {
    const select = $(id);
    select.replaceChildren(...(keep ? [element("option", { value: "", text: "(none)" })] : []));
    columns.forEach((name) => select.append(element("option", { value: name, text: name })));
  }
  const mos = columns.find((name) => name.toLowerCase() === "mos");
  if (mos) $("#gmc-mos").value = mos;
  const score = columns.find((name) => !["image", "reference", "error", "mos", "std", "maps"].includes(name.toLowerCase()));
  if (score) $("#gmc-score").value = score;
  const std = columns.find((name) => name.toLowerCase() === "std");
  if (std) $("#gmc-std").value = std;
}

async function runGmc() {
  const file = $("#gmc-file").files[0];
  if (!file) return setStatus("choose a results CSV", true);
  const button = $("#gmc-button");
  button.disabled = true;
  try {
    const form = new FormData();
    form.append("results", file);
    form.append("score_column", $("#gmc-score").value);
    form.append("mos_column", $("#gmc-mos").value);
    if ($("#gmc-std").value) form.append("std_column", $("#gmc-std").value);
    setStatus("computing GMC…");
    const answer = await api("/api/gmc", { method: "POST", body: form });
    drawHeatmap(answer);
    $("#gmc-result").hidden = false;
    const heights = Object.entries(answer.average_height).map(([k, v]) => `${k} ${formatScore(v)}`).join(" · ");
    $("#gmc-caption").textContent =
      `${answer.count} rows; average height ${heights}. x: quality scale Qs, y: quality difference Qd, colour: ${answer.statistic}.`;
    setStatus("GMC computed");
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function heatColour(value) {
  // -1 → blue, 0 → white, 1 → red (the same diverging idea as the maps)
  const t = Math.max(-1, Math.min(1, value));
  const target = t >= 0 ? MORE : LESS;
  const a = Math.abs(t);
  return `rgb(${target.map((c) => Math.round(255 * (1 - a) + c * a)).join(",")})`;
}

function drawHeatmap(answer) {
  const canvas = $("#gmc-canvas");
  const context = canvas.getContext("2d");
  const { qs, qd, values } = answer.grid;
  const left = 60, top = 20, width = canvas.width - left - 90, height = canvas.height - top - 50;
  context.clearRect(0, 0, canvas.width, canvas.height);
  const cellW = width / qs.length, cellH = height / qd.length;
  values.forEach((row, j) =>
    row.forEach((value, i) => {
      context.fillStyle = value === null ? "#ccc" : heatColour(value);
      context.fillRect(left + i * cellW, top + height - (j + 1) * cellH, Math.ceil(cellW), Math.ceil(cellH));
    })
  );
  context.fillStyle = "#222";
  context.font = "12px system-ui, sans-serif";
  context.fillText(`Qs ${formatScore(qs[0])} … ${formatScore(qs[qs.length - 1])}`, left, canvas.height - 25);
  context.save();
  context.translate(15, top + height);
  context.rotate(-Math.PI / 2);
  context.fillText(`Qd ${formatScore(qd[0])} … ${formatScore(qd[qd.length - 1])}`, 0, 0);
  context.restore();
  drawColourBar(context, left + width + 20, top, 16, height, answer.statistic);
  canvas.dataset.colourBar = answer.statistic || "";
}

function drawColourBar(context, x, y, width, height, label) {
  // the heatmap's key: −1 (blue) … 0 (white) … +1 (red), in the same colours
  const steps = 100;
  for (let k = 0; k < steps; k += 1) {
    context.fillStyle = heatColour(1 - (2 * (k + 0.5)) / steps);
    context.fillRect(x, y + (k * height) / steps, width, Math.ceil(height / steps));
  }
  context.strokeStyle = "#222";
  context.strokeRect(x, y, width, height);
  context.fillStyle = "#222";
  context.font = "12px system-ui, sans-serif";
  context.fillText("+1", x + width + 4, y + 10);
  context.fillText("0", x + width + 4, y + height / 2 + 4);
  context.fillText("−1", x + width + 4, y + height);
  context.fillText(label || "", x - 4, y + height + 18);
}

// ---------------------------------------------------------------------------- start

async function start() {
  $("#compare-button").addEventListener("click", runCompare);
  $("#score-button").addEventListener("click", runScore);
  $("#gmc-button").addEventListener("click", runGmc);
  $("#gmc-file").addEventListener("change", readCsvHeader);
  $("#opacity").addEventListener("input", redraw);
  $("#show-reference").addEventListener("change", () => state.compare && state.selected >= 0 && selectCandidate(state.selected));
  $("#show-best").addEventListener("click", () => state.compare && selectCandidate(candidateIndex(state.compare.best)));
  $("#show-worst").addEventListener("click", () => state.compare && selectCandidate(candidateIndex(state.compare.worst)));
  try {
    state.info = await api("/api/info");
    $("#model-note").textContent = state.info.relational
      ? "Relational model loaded: maps and the relational score are shown."
      : `Relational model not available: showing ${state.info.full_reference.join(", ") || "no"} metric scores only.`;
    if (state.info.root) {
      const { files } = await api("/api/files");
      for (const name of files) {
        $("#root-reference").append(element("option", { value: name, text: name }));
        $("#root-tests").append(element("option", { value: name, text: name }));
      }
      $("#root-picker").hidden = false;
    }
    setStatus("ready");
  } catch (error) {
    setStatus(error.message, true);
  }
}

start();
