#!/usr/bin/env node
// Compiles contracts/*.sol with solc-js (the pinned npm `solc`) into <out>/<Contract>.json
// ({contractName, abi, bytecode, compiler}), the same shape our deployer reads from the Uniswap builds.
// Usage: node build.js <node_modules dir> <out dir>
"use strict";
const fs = require("fs");
const path = require("path");

const [modules, outDir] = process.argv.slice(2);
if (!modules || !outDir) {
  console.error("usage: node build.js <node_modules dir> <out dir>");
  process.exit(2);
}
const solc = require(path.join(path.resolve(modules), "solc"));
const contractsDir = path.join(__dirname, "contracts");

const sources = {};
for (const name of fs.readdirSync(contractsDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[name] = { content: fs.readFileSync(path.join(contractsDir, name), "utf8") };
}

// Imports such as "@openzeppelin/contracts/..." resolve inside the installed node_modules only.
function findImports(importPath) {
  const candidate = path.join(path.resolve(modules), importPath);
  if (!candidate.startsWith(path.resolve(modules) + path.sep) || !fs.existsSync(candidate)) {
    return { error: `import not found: ${importPath}` };
  }
  return { contents: fs.readFileSync(candidate, "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // Cancun: OpenZeppelin 5 uses mcopy; anvil's default hardfork is newer.
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
// Only our own contracts: the imported OpenZeppelin ones are compiled into them, not deployed.
for (const [file, contracts] of Object.entries(output.contracts).filter(([f]) => f in sources)) {
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = { contractName: name, source: file, compiler: solc.version(), abi: c.abi, bytecode: c.evm.bytecode.object };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`built ${name} (${c.evm.bytecode.object.length / 2} bytes) with solc ${solc.version()}`);
  }
}
