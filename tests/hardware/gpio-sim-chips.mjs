// The simulated chips of the VM tests (hardware rig and power-cut run), made with the kernel's
// gpio-sim driver through configfs: a chip labelled like a Raspberry Pi 4's pin controller
// (pinctrl-bcm2711, 28 lines named GPIO0..GPIO27) and an 8-line expander (vigia-aux, unnamed
// lines). A button is simulated by writing `pull-up`/`pull-down` to the line's sim_gpioN/pull;
// an output's level is read from sim_gpioN/value.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CONFIGFS = '/sys/kernel/config/gpio-sim';
export const SOC_LABEL = 'pinctrl-bcm2711';
export const AUX_LABEL = 'vigia-aux';

function writeAttr(path, value) {
  writeFileSync(path, value);
}

export function createSimDevice() {
  const dev = join(CONFIGFS, 'vigia');
  if (existsSync(dev)) throw new Error(`${dev} exists already`);
  mkdirSync(dev);
  const bank = (name, label, lines, names) => {
    const dir = join(dev, name);
    mkdirSync(dir);
    writeAttr(join(dir, 'num_lines'), String(lines));
    writeAttr(join(dir, 'label'), label);
    names?.forEach((n, i) => {
      mkdirSync(join(dir, `line${i}`));
      writeAttr(join(dir, `line${i}`, 'name'), n);
    });
    return dir;
  };
  const soc = bank(
    'bank0',
    SOC_LABEL,
    28,
    Array.from({ length: 28 }, (_, i) => `GPIO${i}`),
  );
  const aux = bank('bank1', AUX_LABEL, 8);
  writeAttr(join(dev, 'live'), '1');
  const devName = readFileSync(join(dev, 'dev_name'), 'utf8').trim();
  const chip = (dir, label, lines) => {
    const name = readFileSync(join(dir, 'chip_name'), 'utf8').trim();
    const attrs = join('/sys/devices/platform', devName, name);
    const sysfs = sysfsChip(label);
    return {
      label,
      name,
      lines,
      devName,
      sysfsBase: sysfs?.base,
      sysfsDir: sysfs?.dir,
      ngpio: sysfs?.ngpio,
      pull(offset, pull) {
        writeAttr(join(attrs, `sim_gpio${offset}`, 'pull'), pull);
      },
      value(offset) {
        return Number(readFileSync(join(attrs, `sim_gpio${offset}`, 'value'), 'utf8').trim());
      },
      pullOf(offset) {
        return readFileSync(join(attrs, `sim_gpio${offset}`, 'pull'), 'utf8').trim();
      },
    };
  };
  return { soc: chip(soc, SOC_LABEL, 28), aux: chip(aux, AUX_LABEL, 8) };
}

/** The legacy sysfs view of a chip (read here, not with the driver under test): its directory, base and size. */
export function sysfsChip(label) {
  const root = '/sys/class/gpio';
  for (const dir of readdirSync(root).filter((e) => /^gpiochip\d+$/.test(e))) {
    const read = (f) => readFileSync(join(root, dir, f), 'utf8').trim();
    if (read('label') === label) return { dir, base: Number(read('base')), ngpio: Number(read('ngpio')) };
  }
  return undefined;
}
