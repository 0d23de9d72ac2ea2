#!/usr/bin/env node
/**
 * Checks the import graph of src/: no cycles (type-only imports included, so a type cycle
 * cannot turn into a runtime one with a later edit) and the layer rules in the table below.
 *
 *   node scripts/check-imports.mjs [--root DIR]
 *
 * Every import counts: `import`, `import type`, `export ... from`, `import('...')` and
 * `import('...')` types. Relative specifiers resolve as NodeNext does for this repo
 * (`./x.js` -> `./x.ts`, a directory -> its `index.ts`); packages and Node built-ins are
 * always allowed. A worker started with `new URL('./w.js', import.meta.url)` is not an import.
 * Exits 0 when clean, 1 on cycles or violations, 2 on bad usage.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * Layers, bottom to top, by directory under the root ('.' is the files directly in it).
 * A file may import its own layer and the layers in `mayImport`; features, anpr and nodered are
 * siblings and may not import each other.
 */
const LAYERS = [
  { name: 'core', dir: 'core', mayImport: [] },
  { name: 'config', dir: 'config', mayImport: ['core'] },
  { name: 'drivers', dir: 'drivers', mayImport: ['config', 'core'] },
  { name: 'features', dir: 'features', mayImport: ['drivers', 'config', 'core'] },
  { name: 'anpr', dir: 'anpr', mayImport: ['drivers', 'config', 'core'] },
  // Node-RED reaches the hardware only through the contract (commands), so not through drivers.
  { name: 'nodered', dir: 'nodered', mayImport: ['config', 'core'] },
  { name: 'gateway', dir: 'gateway', mayImport: ['features', 'anpr', 'nodered', 'drivers', 'config', 'core'] },
  // The technician's tools (doctor, gpio watch, outbox...): they talk to the daemon or open the hardware themselves.
  { name: 'technician', dir: 'technician', mayImport: ['gateway', 'features', 'anpr', 'nodered', 'drivers', 'config', 'core'] },
  // The call center shares the daemon's event, command and hotlist code.
  { name: 'central', dir: 'central', mayImport: ['gateway', 'anpr', 'config', 'core'] },
  { name: 'top', dir: '.', mayImport: ['central', 'technician', 'gateway', 'features', 'anpr', 'nodered', 'drivers', 'config', 'core'] },
];

/** The controller wires everything together, so only the entry points may depend on it. */
const CONTROLLER = 'controller.ts';
const ENTRY_POINTS = ['cli.ts', 'daemon.ts', 'demo.ts', 'launch.ts'];

/** Leaves any layer may import; in exchange they import nothing from the root. */
const LEAVES = ['version.ts'];

const USAGE = 'usage: node scripts/check-imports.mjs [--root DIR]';

function parseArgs(argv) {
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--root' && argv[i + 1] !== undefined) root = path.resolve(argv[++i]);
    else if (arg.startsWith('--root=')) root = path.resolve(arg.slice('--root='.length));
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`check-imports: unexpected argument ${arg}\n${USAGE}`);
      process.exit(2);
    }
  }
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    console.error(`check-imports: ${root} is not a directory`);
    process.exit(2);
  }
  return { root };
}

function checkTable() {
  const names = new Set(LAYERS.map((layer) => layer.name));
  for (const layer of LAYERS) {
    for (const below of layer.mayImport) {
      if (!names.has(below)) throw new Error(`LAYERS: ${layer.name} may import unknown layer ${below}`);
    }
  }
}

function listTsFiles(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listTsFiles(full));
    else if (entry.isFile() && entry.name.endsWith('.ts')) files.push(full);
  }
  return files.sort();
}

/** Every module specifier in a file, with its 1-based line; walks the AST so strings and comments never count. */
function extractImports(file, text) {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const add = (literal) => {
    if (!literal || !ts.isStringLiteralLike(literal)) return;
    const { line } = source.getLineAndCharacterOfPosition(literal.getStart(source));
    found.push({ specifier: literal.text, line: line + 1 });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The .ts file a relative specifier names, null when none exists, or 'other' for a non-TS file such as JSON. */
function resolveRelative(fromFile, specifier) {
  const base = path.resolve(path.dirname(fromFile), specifier);
  const candidates = [];
  if (base.endsWith('.js')) candidates.push(`${base.slice(0, -3)}.ts`);
  if (base.endsWith('.ts')) candidates.push(base);
  candidates.push(`${base}.ts`, path.join(base, 'index.ts'));
  for (const candidate of candidates) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  if (existsSync(base) && statSync(base).isFile()) return 'other';
  return null;
}

function layerOf(rel) {
  const dir = rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : '.';
  return LAYERS.find((layer) => layer.dir === dir);
}

/** Why importing `to` from `from` (both root-relative, posix) breaks a rule; empty when it does not. */
function ruleBreaks(from, to) {
  const reasons = [];
  if (LEAVES.includes(from)) {
    reasons.push(`${from} is a leaf and may import nothing from the tree`);
    return reasons;
  }
  if (LEAVES.includes(to)) return reasons;
  if (to === CONTROLLER && !ENTRY_POINTS.includes(from)) {
    reasons.push(`only the entry points (${ENTRY_POINTS.join(', ')}) may import ${CONTROLLER}`);
  }
  const fromLayer = layerOf(from);
  const toLayer = layerOf(to);
  if (fromLayer && toLayer && fromLayer !== toLayer && !fromLayer.mayImport.includes(toLayer.name)) {
    const allowed = [fromLayer.name, ...fromLayer.mayImport].join(', ');
    reasons.push(`layer ${fromLayer.name} may not import layer ${toLayer.name} (it may import: ${allowed})`);
  }
  return reasons;
}

/** Strongly connected components (Tarjan), iterative so deep graphs cannot overflow the stack. */
function stronglyConnected(nodes, edges) {
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  let counter = 0;
  for (const start of nodes) {
    if (index.has(start)) continue;
    const work = [{ node: start, successors: [...(edges.get(start) ?? [])], next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      if (frame.next < frame.successors.length) {
        const succ = frame.successors[frame.next++];
        if (!index.has(succ)) {
          index.set(succ, counter);
          low.set(succ, counter++);
          stack.push(succ);
          onStack.add(succ);
          work.push({ node: succ, successors: [...(edges.get(succ) ?? [])], next: 0 });
        } else if (onStack.has(succ)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(succ)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent), low.get(frame.node)));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component.sort());
      }
    }
  }
  return components;
}

/** A shortest cycle through `start` that stays inside its component (breadth-first). */
function cycleThrough(start, members, edges) {
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const succ of [...(edges.get(node) ?? [])].sort()) {
      if (!members.has(succ)) continue;
      if (succ === start) {
        const path = [start];
        for (let at = node; at !== start; at = previous.get(at)) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!previous.has(succ)) {
        previous.set(succ, node);
        queue.push(succ);
      }
    }
  }
  return [start, start];
}

function main() {
  checkTable();
  const { root } = parseArgs(process.argv.slice(2));
  const rel = (file) => path.relative(root, file).split(path.sep).join('/');
  const label = (file) => `${path.basename(root)}/${rel(file)}`;

  const files = listTsFiles(root);
  const edges = new Map(files.map((file) => [file, new Set()]));
  const problems = [];
  let importCount = 0;

  for (const file of files) {
    const layer = layerOf(rel(file));
    if (!layer) problems.push(`${label(file)}: directory is in no layer (add it to LAYERS in scripts/check-imports.mjs)`);
    for (const { specifier, line } of extractImports(file, readFileSync(file, 'utf8'))) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const target = resolveRelative(file, specifier);
      if (target === 'other') continue;
      if (target === null) {
        problems.push(`${label(file)}:${line} imports ${specifier}: no such file`);
        continue;
      }
      if (path.relative(root, target).startsWith('..')) continue;
      importCount++;
      edges.get(file).add(target);
      const reasons = ruleBreaks(rel(file), rel(target));
      if (reasons.length > 0) problems.push(`${label(file)}:${line} imports ${label(target)}: ${reasons.join('; ')}`);
    }
  }

  const cycles = [];
  for (const component of stronglyConnected(files, edges)) {
    const [first] = component;
    if (component.length === 1 && !edges.get(first).has(first)) continue;
    const cycle = cycleThrough(first, new Set(component), edges);
    const others = component.filter((file) => !cycle.includes(file));
    const rest = others.length > 0 ? ` (same cycle group: ${others.map(label).join(', ')})` : '';
    cycles.push(`cycle: ${cycle.map(label).join(' -> ')}${rest}`);
  }

  for (const line of [...cycles.sort(), ...problems]) console.log(line);
  if (cycles.length > 0 || problems.length > 0) {
    console.log(
      `check-imports: ${cycles.length} cycle${cycles.length === 1 ? '' : 's'}, ${problems.length} violation${problems.length === 1 ? '' : 's'}` +
        ` (${files.length} files, ${importCount} imports)`,
    );
    process.exit(1);
  }
  console.log(`ok: ${files.length} files, ${importCount} imports, no cycles, layers respected`);
}

main();
