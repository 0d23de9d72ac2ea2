import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemdVm, type SystemdImage, type SystemdVm } from '../../scripts/systemd-rig.mjs';
import { buildImage, ROOT, secondsOf, sh as shIn, systemState as systemStateOf } from './guest.js';

// The systemd rig itself: a Debian 12 system booted in QEMU with systemd as PID 1, reached over
// SSH as a technician reaches a pole. One boot and one reboot (each is tens of seconds under TCG
// emulation); the timings are printed, never asserted.

const CHIPS_SCRIPT = resolve(ROOT, 'tests/hardware/gpio-sim-chips.mjs');

let image: SystemdImage;
let vm: SystemdVm | undefined;
let baseImageMtime: number;
const timings: Record<string, number | boolean | string | null> = {};

const sh = (command: string) => shIn(vm!, command);
const systemState = () => systemStateOf(vm!);

beforeAll(async () => {
  const building = Date.now();
  image = await buildImage();
  timings.image_build_s = secondsOf(Date.now() - building);
  timings.image_cached = image.cached;
  if (!image.cached) timings.image_build_cold_s = image.buildSeconds;
  baseImageMtime = statSync(image.image).mtimeMs;
  vm = await bootSystemdVm({ memoryMb: 1024, cpus: 2, image });
  timings.boot_to_ssh_s = secondsOf(vm.bootMs);
});

afterAll(async () => {
  await vm?.kill();
  process.stderr.write(`systemd-vm: ${JSON.stringify(timings)}\n`);
});

describe('a Debian 12 system with systemd, in QEMU', () => {
  it('runs systemd as PID 1 and gets to running', async () => {
    expect(await sh('cat /proc/1/comm')).toBe('systemd');
    expect(['running', 'degraded']).toContain(await systemState());
    expect(await sh('systemctl get-default')).toBe('multi-user.target');
  });

  it('lets the technician in over SSH, with passwordless sudo, on a host named pole', async () => {
    expect(await sh('id -un')).toBe('technician');
    expect(await sh('hostname')).toBe('pole');
    expect(await sh('sudo -n id -u')).toBe('0');
    expect(await sh('systemctl is-active ssh.service')).toBe('active');
  });

  it('has Node 20 and npm in /usr/local/bin', async () => {
    expect(await sh('command -v node')).toBe('/usr/local/bin/node');
    expect(await sh('node --version')).toBe(process.version);
    expect(process.version).toMatch(/^v20\./);
    expect(await sh('npm --version')).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('creates gpio-sim chips whose lines the technician reads through the gpio group', async () => {
    await vm!.scp(CHIPS_SCRIPT, '/tmp/gpio-sim-chips.mjs');
    const made = JSON.parse(
      await sh(
        `sudo node --input-type=module -e "import { createSimDevice } from '/tmp/gpio-sim-chips.mjs'; const c = createSimDevice(); c.soc.pull(17, 'pull-up'); console.log(JSON.stringify({ soc: c.soc.name, aux: c.aux.name }))"`,
      ),
    );
    expect(made.soc).toMatch(/^gpiochip\d+$/);
    // udev gives the chips to the gpio group (as Raspberry Pi OS does), which the technician is in.
    expect(await sh(`udevadm settle && stat -c %G:%a /dev/${made.soc}`)).toBe('gpio:660');
    const detected = await sh('gpiodetect');
    expect(detected).toContain(`${made.soc} [pinctrl-bcm2711] (28 lines)`);
    expect(detected).toContain(`${made.aux} [vigia-aux] (8 lines)`);
    expect(await sh(`gpioinfo ${made.soc} | grep -c '"GPIO[0-9]*"'`)).toBe('28');
    expect(await sh(`gpioget ${made.soc} 17`)).toBe('1');
    expect(await sh(`gpioget ${made.soc} 18`)).toBe('0');
  });

  it('has systemd-analyze', async () => {
    const startup = await sh('systemd-analyze time');
    expect(startup).toMatch(/^Startup finished in /);
    timings.guest_startup = startup.split('\n')[0]!.replace(/^Startup finished in /, '');
  });

  it('comes back after a reboot, with systemd running and gpio-sim loaded again', async () => {
    const bootId = await sh('cat /proc/sys/kernel/random/boot_id');
    timings.reboot_to_ssh_s = secondsOf(await vm!.reboot());
    expect(await sh('cat /proc/sys/kernel/random/boot_id')).not.toBe(bootId);
    expect(['running', 'degraded']).toContain(await systemState());
    expect(await sh('cat /sys/module/gpio_sim_rig/initstate')).toBe('live');
    // The chips made before the reboot are gone with it.
    expect(await sh('ls /sys/kernel/config/gpio-sim')).toBe('');
  });

  it('powers off cleanly, leaving the cached image untouched', async () => {
    await vm!.stop();
    vm = undefined;
    expect(statSync(image.image).mtimeMs).toBe(baseImageMtime);
  });
});
