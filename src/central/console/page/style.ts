/** The console's stylesheet: large type and strong colours for a room that watches it all night. */
export const APP_CSS = `
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111; }
header { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #0b3d2e; color: #fff; }
header h1 { font-size: 1.2rem; margin: 0; flex: 1; }
header p { margin: 0; }
main { padding: 1rem; }
button { cursor: pointer; }
#login { max-width: 22rem; display: grid; gap: .5rem; background: #fff; padding: 1rem; }
#console { display: grid; grid-template-columns: minmax(22rem, 2fr) 3fr; gap: 1rem; align-items: start; }
#alarms { list-style: none; padding: 0; margin: 0; max-height: calc(100vh - 9rem); overflow-y: auto; }
.count { font-size: .9rem; background: #b91c1c; color: #fff; border-radius: 1rem; padding: 0 .5rem; }
.count:empty { display: none; }
.alarm { background: #fff; border-left: .5rem solid #b91c1c; margin-bottom: .5rem; padding: .5rem .75rem; display: grid; grid-template-columns: 1fr auto; gap: .25rem .75rem; }
.alarm.new { animation: flash 1s ease-in-out 3; }
.alarm[data-state="acknowledged"] { border-left-color: #d97706; }
.alarm[data-state="cleared"] { border-left-color: #6b7280; opacity: .7; }
.alarm .what { font-weight: 600; }
.alarm img { max-width: 100%; display: block; margin-top: .25rem; }
.alarm img.crop { max-width: 240px; border: 1px solid #d1d5db; }
.alarm .actions { display: flex; gap: .5rem; align-items: start; flex-wrap: wrap; justify-content: end; }
.badge { font-size: .8rem; padding: .1rem .4rem; border-radius: .25rem; background: #fee2e2; }
.alarm[data-state="acknowledged"] .badge { background: #fef3c7; }
.alarm[data-state="cleared"] .badge { background: #e5e7eb; }
.unsynced, .warn { color: #b45309; }
#link[data-state="down"] { color: #fecaca; font-weight: 600; }
#tabs { display: flex; gap: .25rem; flex-wrap: wrap; margin-bottom: .5rem; }
#tabs button { border: 0; padding: .4rem .8rem; background: #e5e7eb; }
#tabs button[aria-selected="true"] { background: #0b3d2e; color: #fff; }
.tab { background: #fff; padding: .75rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
td, th { padding: .25rem .5rem; border-bottom: 1px solid #e5e7eb; text-align: left; font-size: .9rem; vertical-align: top; }
td img { max-height: 3rem; }
.online { color: #047857; } .offline { color: #b91c1c; }
form { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin-bottom: .5rem; }
form label { display: grid; gap: .15rem; font-size: .85rem; }
form label.check { display: flex; align-items: center; }
textarea { width: 100%; min-width: 24rem; font-family: ui-monospace, monospace; }
#hotlist-change label:first-child { flex-basis: 100%; }
.error { color: #b91c1c; }
#map { width: 100%; height: auto; background: #f8fafc; border: 1px solid #e5e7eb; }
#map .grid { stroke: #e2e8f0; stroke-width: 1; }
#map .axis { fill: #64748b; font-size: 10px; }
#map .device { stroke: #fff; stroke-width: 2; }
#map .device.online { fill: #047857; } #map .device.offline { fill: #b91c1c; } #map .device.unknown { fill: #6b7280; }
#map .name { font-size: 11px; fill: #111; }
#map .alarm-ring { fill: none; stroke: #b91c1c; stroke-width: 3; animation: pulse 1.2s ease-in-out infinite; }
#map .empty { fill: #64748b; font-size: 14px; }
#map .scale { stroke: #111; stroke-width: 2; fill: none; }
#map .scale-label { font-size: 11px; fill: #111; }
.legend { font-size: .85rem; }
.dot { display: inline-block; width: .7rem; height: .7rem; border-radius: 50%; vertical-align: middle; }
.dot.online { background: #047857; } .dot.offline { background: #b91c1c; } .dot.ring { border: 3px solid #b91c1c; width: .5rem; height: .5rem; }
@keyframes flash { 50% { background: #fecaca; } }
@keyframes pulse { 50% { stroke-opacity: .2; } }
@media (max-width: 60rem) { #console { grid-template-columns: 1fr; } }
`;
