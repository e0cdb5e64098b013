// Click a column header to sort the table by it (again: reverse). Cells sort by their
// data-value (numbers numerically, text alphabetically); empty values always go last.
// Shared by the viewer page and the batch report (which inlines this file).
"use strict";

function makeSortable(table) {
  table.querySelectorAll("thead th").forEach((header, column) => {
    header.addEventListener("click", () => {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach((th) => th.removeAttribute("aria-sort"));
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      const key = (row) => {
        const cell = row.cells[column];
        const value = cell && cell.dataset.value;
        if (value === undefined || value === "") return null;
        return Number.isNaN(Number(value)) ? value : Number(value);
      };
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === null) return y === null ? 0 : 1;
        if (y === null) return -1;
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.append(row));
    });
  });
}
