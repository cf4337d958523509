// contract_check.mjs — prints what the page's parseContract reads from an
// openapi.yaml given on stdin; web/contract_test.go compares it with
// kin-openapi's reading of the same file.
import { parseContract } from "../static/assets/api.js";

let raw = "";
for await (const chunk of process.stdin) raw += chunk;
const c = parseContract(raw);
process.stdout.write(JSON.stringify({ ...c, ops: [...c.ops].sort() }));
