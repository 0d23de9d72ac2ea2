import { type Check, type DoctorContext, errorText, fail, pass, warn } from './check.js';

/** The embedded Node-RED runs in the daemon and its editor answers. */
export const noderedCheck: Check = async (ctx) => {
  if (!ctx.config.nodered.enabled) return [];
  const nr = ctx.status?.nodered;
  if (!ctx.status) return [warn('node-red', 'not checked: it runs only with the daemon', 'start the daemon and run the doctor again')];
  if (nr?.state !== 'running') {
    const failure = nr?.last_failure ? `; last failure: ${nr.last_failure.reason}${nr.last_failure.detail ? ` (${nr.last_failure.detail})` : ''}` : '';
    return [
      fail(
        'node-red',
        `${nr?.state ?? 'not running'}${failure}`,
        'a flow that hangs or leaks is restarted with backoff: vigia logs --mod nodered shows why; vigia flows export, fix, deploy',
      ),
    ];
  }
  const flows = `${nr.flows?.nodes ?? 0} flow nodes`;
  if (!nr.url) return [pass('node-red', `running, ${flows}`)];
  return [await editorAnswers(ctx, nr.url, flows)];
};

async function editorAnswers(ctx: DoctorContext, url: string, flows: string) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(ctx.timeoutMs) });
    await res.arrayBuffer();
    if (res.ok) return pass('node-red', `running, ${flows}, the editor answers at ${url}`);
    return fail('node-red', `running, but the editor at ${url} answers HTTP ${res.status}`, 'read vigia logs --mod nodered');
  } catch (err) {
    return fail(
      'node-red',
      `running, but the editor at ${url} does not answer: ${errorText(err)}`,
      'read vigia logs --mod nodered; check nodered.bind and nodered.port',
    );
  }
}
