/** A catalogued `plate.hit` payload (BB·CL·12, an exact match), with the given evidence. */
export function plateHitPayload(evidence: Record<string, unknown> | null) {
  return {
    camera: 'gate',
    plate: 'BBCL12',
    display: 'BB·CL·12',
    confidence: 0.97,
    format: 'cl',
    trigger: 'frame',
    frames: 1,
    box: [1, 2, 3, 4],
    seen_at: new Date().toISOString(),
    match: { kind: 'exact', distance: 0 },
    entry: { plate: 'BBCL12', reason: 'stolen', source: 'test', added: '2026-01-01', expires: null },
    hotlist_version: 'v1',
    evidence,
  };
}
