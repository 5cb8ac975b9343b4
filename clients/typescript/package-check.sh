#!/usr/bin/env bash
# Packaging check of the TypeScript client: `npm pack` (its prepack builds dist/ with tsc),
# install the tarball into a scratch project in a temporary folder outside the repository,
# compile a ten-line program against the installed package with tsc and run it against the
# live server. Reads BATON_SMOKE_TARGET and BATON_SMOKE_INTEGRATION_KEY (as the smoke does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../.. && pwd)"
export npm_config_cache="${npm_config_cache:-$ROOT/.cache/npm}"
: "${BATON_SMOKE_TARGET:?set BATON_SMOKE_TARGET (host:port of a live server)}"
: "${BATON_SMOKE_INTEGRATION_KEY:?set BATON_SMOKE_INTEGRATION_KEY (an integration API key)}"
npm_q=(--no-audit --no-fund --loglevel=error)

if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
    npm ci "${npm_q[@]}"
    touch node_modules/.installed
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
tarball="$scratch/$(npm pack --silent --pack-destination "$scratch" | tail -n 1)"

# The tarball holds the built ESM, its .d.ts and the license, and not the smoke program.
listing="$(tar -tzf "$tarball")"
for f in package/dist/index.js package/dist/index.d.ts package/dist/client.js \
    package/dist/gen-deps/google/rpc/error_details_pb.js package/LICENSE package/README.md; do
    grep -qx "$f" <<<"$listing" || { echo "package-check: $f missing from $(basename "$tarball")" >&2; exit 1; }
done
if grep -q "smoke" <<<"$listing"; then echo "package-check: the smoke program is in the tarball" >&2; exit 1; fi

# A scratch project that only knows the tarball (and the same TypeScript as this package).
app="$scratch/app"
mkdir -p "$app/src"
cd "$app"
cat >package.json <<'JSON'
{ "name": "baton-package-check", "private": true, "type": "module" }
JSON
cat >tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
  "strict": true, "types": ["node"], "rootDir": "src", "outDir": "dist" }, "include": ["src"] }
JSON
ts_version="$(node -p 'require(process.argv[1]).packages["node_modules/typescript"].version' "$OLDPWD/package-lock.json")"
node_types="$(node -p 'require(process.argv[1]).packages["node_modules/@types/node"].version' "$OLDPWD/package-lock.json")"
npm install "${npm_q[@]}" --prefer-offline "$tarball" "typescript@$ts_version" "@types/node@$node_types"
cat >src/main.ts <<'TS'
import { BatonClient, Code, describeError } from "@baton/client";
const target = process.env.BATON_SMOKE_TARGET!;
const baton = new BatonClient({ target, credentials: process.env.BATON_SMOKE_INTEGRATION_KEY! });
const { customer } = await baton.customers.createCustomer({ customer: { name: "Package check (typescript)" } });
const { agents } = await baton.agents.listAgents({ pageSize: 100 });
console.log(`created customer ${customer!.id}; ${agents.length} agent(s) listed`);
const wrong = new BatonClient({ target, credentials: "bk_key_0000000000000000_wrongwrongwrong" });
const err = await wrong.agents.listAgents({}).then(() => undefined, describeError);
if (err?.code !== Code.Unauthenticated) throw new Error(`wrong key: ${JSON.stringify(err)}`);
console.log(`wrong key: ${err.codeName} (${err.reason})`); baton.close(); wrong.close();
TS
node_modules/.bin/tsc -p tsconfig.json
node dist/main.js
echo "package-check typescript: ok ($(basename "$tarball"))"
