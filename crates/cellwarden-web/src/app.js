// Click a column heading to sort that table (text, or numbers when every cell is one).
// Pages work without this script; it only reads text content and never writes markup.
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.list")) {
    const heads = table.querySelectorAll("thead th");
    heads.forEach((th, col) => {
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        if (!body) return;
        const rows = Array.from(body.rows);
        const cell = (r) => (r.cells[col] ? r.cells[col].textContent.trim() : "");
        const numeric = rows.every((r) => cell(r) !== "" && !isNaN(Number(cell(r))));
        const dir = th.dataset.dir === "asc" ? -1 : 1;
        heads.forEach((h) => delete h.dataset.dir);
        th.dataset.dir = dir === 1 ? "asc" : "desc";
        rows.sort((a, b) =>
          numeric ? dir * (Number(cell(a)) - Number(cell(b))) : dir * cell(a).localeCompare(cell(b))
        );
        for (const r of rows) body.appendChild(r);
      });
    });
  }
});
