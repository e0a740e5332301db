// /docs: the service's OpenAPI description as a page, with nothing loaded from outside the service.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function table(head, rows) {
  const t = el("table");
  const tr = el("tr");
  for (const h of head) tr.append(el("th", h));
  t.append(tr);
  for (const row of rows) {
    const r = el("tr");
    for (const cell of row) r.append(el("td", cell));
    t.append(r);
  }
  return t;
}

async function render() {
  const spec = await (await fetch("/openapi.json")).json();
  document.getElementById("title").textContent = `${spec.info.title} API`;
  document.getElementById("summary").textContent = spec.info.summary || "";
  const base = `${location.protocol}//${location.host}`;
  document.getElementById("curl").textContent = [
    `curl -s ${base}/v1/models`,
    `curl -s -H "Content-Type: image/png" --data-binary @digit.png "${base}/v1/predict?top=3"`,
    `curl -s -F file=@digit.jpg ${base}/v1/predict`,
    `curl -s -H "Content-Type: application/json" -d @image-28x28.json ${base}/v1/predict`,
  ].join("\n");
  const operations = document.getElementById("operations");
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const section = el("section");
      const h = el("h2");
      h.append(el("span", method.toUpperCase(), "method"), el("code", path));
      section.append(h);
      if (op.summary) section.append(el("p", op.summary));
      if (op.description) section.append(el("p", op.description));
      if (op.parameters && op.parameters.length) {
        section.append(el("h3", "Query parameters"));
        section.append(table(["name", "type", "meaning"], op.parameters.map((p) => {
          const schema = p.schema || {};
          const type = schema.type || (schema.anyOf || []).map((s) => s.type).filter((t) => t !== "null").join(" | ");
          const bounds = [schema.minimum !== undefined ? `≥ ${schema.minimum}` : "", schema.maximum !== undefined ? `≤ ${schema.maximum}` : ""].filter(Boolean).join(", ");
          const fallback = schema.default !== undefined && schema.default !== null ? `default ${schema.default}` : "";
          return [p.name, [type, bounds, fallback].filter(Boolean).join(", "), p.description || ""];
        })));
      }
      if (op.requestBody) {
        section.append(el("h3", "Body"));
        section.append(el("p", Object.keys(op.requestBody.content).join(", ")));
      }
      const responses = Object.entries(op.responses || {});
      if (responses.length) {
        section.append(el("h3", "Answers"));
        section.append(table(["status", "meaning"], responses.map(([status, r]) => [status, r.description || ""])));
        const ok = op.responses["200"];
        const example = ok && ok.content && ok.content["application/json"] && ok.content["application/json"].example;
        if (example) section.append(el("pre", JSON.stringify(example, null, 2)));
      }
      operations.append(section);
    }
  }
}

render().catch((err) => {
  document.getElementById("summary").textContent = `cannot read /openapi.json (${err.message})`;
});
