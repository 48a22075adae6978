// Run by test_data_js.py: prints the results of the portal's pure helpers as JSON.
const d = await import(process.argv[2]);
const out = {};
const attempt = (f) => { try { return f(); } catch (e) { return "error: " + e.message; } };
out.degrees = d.parsePosition("62.5, -37.25");
out.sexagesimal = d.parsePosition("04:10:00 -37:15:00");
out.badDec = attempt(() => d.parsePosition("10 95"));
out.radius = d.radiusDeg("90", "arcsec");
out.cone = d.buildAdql({mode: "cone", position: "62 -37", radius: "2", radiusUnit: "arcmin",
  columns: ["objectId", "ra"], constraints: "mag_i_cModel < 24", limit: "", table: "t",
  raCol: "ra", decCol: "dec", idCol: "objectId"});
out.polygon = d.buildAdql({mode: "polygon", polygon: "61 -37, 62 -37, 62 -36", columns: [],
  constraints: "", limit: "10", table: "t", raCol: "coord_ra", decCol: "coord_dec"});
out.ids = d.buildAdql({mode: "ids", ids: "12, 13\n14", columns: [], constraints: "", limit: "",
  table: "t", idCol: "objectId"});
out.badIds = attempt(() => d.parseIds("12 abc"));
out.twoVertices = attempt(() => d.parsePolygon("1 2, 3 4"));
const csv = d.parseCsv('"a","b","c"\n1,"x, ""y""",\n2,z,3.5\n10,w,NaN\n');
out.csv = {names: csv.names, numeric: csv.numeric, length: csv.length, b: csv.text[1],
  c: Array.from(csv.columns[2]).map(String)};
out.sortDesc = Array.from(d.rowOrder(csv, {}, {col: 0, desc: true}));
out.sortNaNLast = Array.from(d.rowOrder(csv, {}, {col: 2, desc: true}));
out.filterRange = Array.from(d.rowOrder(csv, {0: "1..2"}, null));
out.filterText = Array.from(d.rowOrder(csv, {1: "Y"}, null));
console.log(JSON.stringify(out));
