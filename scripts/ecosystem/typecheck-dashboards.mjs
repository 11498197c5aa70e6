// Type-checks each dashboard JSON against @grafana/schema's Dashboard type.
// JSON imported with resolveJsonModule widens string literals ("timeseries",
// "query") to `string`, which the schema's literal unions reject, and skips
// excess-property checks; so instead each dashboard becomes a generated .ts
// file whose object literal is assigned to a `Dashboard`-typed const: that is
// checked field by field, unknown fields included. Then `tsc --noEmit`.
// The schema types some fields as TypeScript string enums (ThresholdsMode,
// FieldColorModeId, ...), which no string literal can be assigned to; JSON
// holds their values, so the type used is Dashboard with every string enum
// replaced by the union of its values (`${Enum}`), and nothing else changed.
import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node typecheck-dashboards.mjs DASHBOARD.json...');
  process.exit(2);
}
const out = join(here, '.generated');
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
for (const f of files) {
  const json = JSON.parse(readFileSync(resolve(f), 'utf8'));
  const name = basename(f, '.json').replace(/[^A-Za-z0-9]/g, '_');
  const src = `// generated from ${f}\nimport type { Dashboard } from '@grafana/schema';\n\n` +
    'type AsJson<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T\n' +
    '  : T extends Array<infer U> ? Array<AsJson<U>> : T extends object ? { [K in keyof T]: AsJson<T[K]> } : T;\n\n' +
    `export const ${name}: AsJson<Dashboard> = ${JSON.stringify(json, null, 2)};\n`;
  writeFileSync(join(out, `${name}.ts`), src);
}
try {
  execFileSync(process.execPath, [join(here, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(here, 'tsconfig.json')],
    { stdio: 'inherit', cwd: here });
  console.log(`typecheck: ${files.length} dashboard(s) match @grafana/schema Dashboard`);
} catch (e) {
  process.exitCode = 1;
} finally {
  if (!process.env.KEEP_GENERATED) rmSync(out, { recursive: true, force: true });
}
