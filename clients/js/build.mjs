// Writes dist/zmot.js: src/zmot.js as one IIFE for a <script> tag (window.zmot), without a
// bundler. The module has no imports; its `export` keywords are dropped and the tracker is
// put on window.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const source = readFileSync(join(root, "src", "zmot.js"), "utf8");

if (/^\s*import\s/m.test(source)) throw new Error("src/zmot.js must not import: the build does not bundle");
const version = source.match(/const VERSION = "([^"]+)"/);
if (!version || version[1] !== pkg.version) throw new Error(`VERSION in src/zmot.js must be ${pkg.version}`);

const body = source
  .replace(/^export default [^;]+;\s*$/m, "")
  .replace(/^export (function|const|class) /gm, "$1 ");
if (/^export\s/m.test(body)) throw new Error("an export form the build does not know");

const out = `/*! zmot ${pkg.version} | Apache-2.0 | built from src/zmot.js by build.mjs */
(function () {
  "use strict";
${body}
  zmot.createTracker = createTracker;
  zmot.defineOffersElement = defineOffersElement;
  if (typeof window !== "undefined" && !window.zmot) window.zmot = zmot;
})();
`;
mkdirSync(join(root, "dist"), { recursive: true });
writeFileSync(join(root, "dist", "zmot.js"), out);
process.stdout.write(`wrote dist/zmot.js (${out.length} bytes)\n`);
