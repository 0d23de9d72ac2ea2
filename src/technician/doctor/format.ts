import type { DoctorReport } from './index.js';

const LABEL = { pass: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

/** `vigia doctor` at a terminal: one line per check, the fix under each warning and failure. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.min(24, Math.max(...report.checks.map((c) => c.name.length)));
  const indent = ' '.repeat(width + 10);
  const lines = [
    `vigia doctor: ${report.site ? `${report.site}/${report.device}` : 'no configuration'}${report.daemon ? `, daemon ${report.daemon}` : ''}`,
    '',
  ];
  for (const c of report.checks) {
    const [first, ...more] = c.detail.split('\n');
    lines.push(`  ${LABEL[c.status]}  ${c.name.padEnd(width)}  ${first}`);
    for (const line of more) lines.push(`${indent}${line}`);
    if (c.fix) lines.push(`${indent}fix: ${c.fix}`);
  }
  const { pass, warn, fail } = report.summary;
  lines.push('', `${pass} passed, ${warn} ${warn === 1 ? 'warning' : 'warnings'}, ${fail} failed${report.ok ? '' : ': see the fix under each FAIL'}`);
  return `${lines.join('\n')}\n`;
}
