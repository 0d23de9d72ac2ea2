import type { Config } from '../../config/schema.js';
import { systemClock } from '../../core/clock.js';
import { type Bias, describeRef, type GpioBackend } from '../../drivers/gpio/types.js';
import { lineRef } from '../../features/field-io.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, pass } from './check.js';

/**
 * Each configured GPIO line: held by the running daemon, or requested here when it is stopped (an
 * input read once, an output requested in its safe, inactive state and released).
 */

type Lines = Array<{ name: string; io: 'input' | 'output'; line: Config['hardware']['inputs'][string]['line']; activeLow: boolean; bias?: Bias }>;

const LINE_FIX =
  'check the line name with gpioinfo (GPIO17 on a Pi 4 or 5) or give {chip, offset}; a line another program holds shows its consumer there: stop that program';

function configuredLines(config: Config): Lines {
  return [
    ...Object.entries(config.hardware.inputs).map(([name, c]) => ({ name, io: 'input' as const, line: c.line, activeLow: c.active_low, bias: c.bias })),
    ...Object.entries(config.hardware.outputs).map(([name, c]) => ({ name, io: 'output' as const, line: c.line, activeLow: c.active_low })),
  ];
}

export const gpioChecks: Check = async (ctx) => {
  const lines = configuredLines(ctx.config);
  if (lines.length === 0) return [];
  if (ctx.status) return fromDaemon(ctx, lines);
  if (ctx.config.hardware.backend === 'sim') return [pass('gpio', `${lines.length} simulated lines (hardware.backend: sim)`)];
  return openHere(ctx, lines);
};

function fromDaemon(ctx: DoctorContext, lines: Lines): DoctorCheck[] {
  const io = ctx.status!['field-io'];
  if (!io)
    return [fail('gpio', 'the daemon runs without its GPIO part', 'restart the daemon (systemctl restart vigia) and read why with vigia logs --mod field-io')];
  const checks: DoctorCheck[] = [pass('gpio', `backend ${io.backend}${io.line_errors > 0 ? `, ${io.line_errors} line errors since start` : ''}`)];
  if (io.line_errors > 0)
    checks[0] = fail(
      'gpio',
      `backend ${io.backend}: ${io.line_errors} line errors since start`,
      'vigia logs --mod field-io --level warn shows which line and why',
    );
  for (const l of lines) {
    const name = `${l.io} ${l.name}`;
    if (l.io === 'input') {
      const input = io.inputs[l.name];
      checks.push(input ? pass(name, `${input.line}, held by the daemon`) : fail(name, 'not opened by the daemon', LINE_FIX));
    } else {
      const output = io.outputs[l.name];
      if (!output) checks.push(fail(name, 'not opened by the daemon', LINE_FIX));
      else if (output.errors > 0)
        checks.push(fail(name, `${output.errors} writes failed`, 'vigia logs --mod field-io --level warn shows why; check the wiring and the relay board'));
      else checks.push(pass(name, `${describeRef(lineRef(l.line))}, held by the daemon, ${output.value ? 'on' : 'off'}`));
    }
  }
  return checks;
}

async function openHere(ctx: DoctorContext, lines: Lines): Promise<DoctorCheck[]> {
  const { selectGpioBackend } = await import('../../drivers/gpio/select.js');
  let backend: GpioBackend;
  let reason: string;
  try {
    ({ backend, reason } = await selectGpioBackend(ctx.config.hardware.backend, { ...ctx.gpio, clock: systemClock }));
  } catch (err) {
    return [
      fail('gpio', errorText(err), 'install the libgpiod tools (apt install gpiod) and check that /dev/gpiochip* exists; hardware.backend picks the interface'),
    ];
  }
  const checks: DoctorCheck[] = [pass('gpio', reason)];
  try {
    for (const l of lines) {
      const name = `${l.io} ${l.name}`;
      const consumer = `vigia-doctor:${l.name}`;
      try {
        if (l.io === 'input') {
          const input = await backend.input(lineRef(l.line), { activeLow: l.activeLow, bias: l.bias ?? 'as-is', consumer });
          const active = await input.read();
          await input.close();
          checks.push(pass(name, `${input.id}, ${active ? 'ACTIVE now' : 'inactive'}`));
        } else {
          const output = await backend.output(lineRef(l.line), { activeLow: l.activeLow, initial: false, consumer });
          await output.close();
          checks.push(pass(name, `${output.id}, left off`));
        }
      } catch (err) {
        checks.push(fail(name, errorText(err), LINE_FIX));
      }
    }
  } finally {
    await backend.close();
  }
  return checks;
}
