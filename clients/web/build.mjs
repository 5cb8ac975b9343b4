// Bundles the widget and the console into dist/ (committed: `baton serve` serves it with Python
// only; `make check-web` rebuilds and fails when the committed bundle differs). esbuild output is
// deterministic for the same inputs and version, so a rebuild of unchanged sources is identical.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome109", "firefox115", "safari16"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist/widget", { recursive: true });
mkdirSync("dist/console", { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: ["src/widget/index.ts"], outfile: "dist/widget/widget.js", loader: { ".css": "text" } }),
  build({ ...common, entryPoints: ["src/widget/page.ts"], outfile: "dist/widget/page.js" }),
  build({ ...common, entryPoints: ["src/console/main.ts"], outfile: "dist/console/console.js" }),
  build({ ...common, entryPoints: ["src/console/console.css"], outfile: "dist/console/console.css" }),
  // The widget's stylesheet as a file too, for pages that mount with injectStyles: false.
  build({ ...common, entryPoints: ["src/widget/widget.css"], outfile: "dist/widget/widget.css" }),
]);
cpSync("static", "dist", { recursive: true });
