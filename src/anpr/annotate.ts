import { extname } from 'node:path';
import type { RankedPlate } from './pipeline.js';

/**
 * Images with the plates read drawn on them (`vigia anpr read --annotate`): a green rectangle and a
 * "TEXT 0.97" label per plate, drawn as SVG over the image.
 */

const LABEL_FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

const xmlEscape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The image with a green rectangle and label per plate, written to `out` (format from its extension, JPEG otherwise). */
export async function annotateImage(data: Buffer, plates: readonly RankedPlate[], out: string): Promise<void> {
  // Loaded here: the CLI imports this module for every command, and only --annotate needs sharp.
  const { default: sharp } = await import('sharp');
  const img = sharp(data, { failOn: 'none' });
  const { width, height } = await img.metadata();
  if (!width || !height) throw new Error('no image size');
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 300));
  const font = Math.max(12, Math.round(Math.min(width, height) / 30));
  const shapes = plates.map((p) => {
    const [x, y, w, h] = p.box.map(Math.round) as [number, number, number, number];
    const label = xmlEscape(`${p.text} ${p.confidence.toFixed(2)}`);
    const ty = y - stroke * 2 > font ? y - stroke * 2 : y + h + font;
    const box = `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="#00e000" stroke-width="${stroke}"/>`;
    const look = `font-family="${LABEL_FONT}" font-weight="bold" font-size="${font}" fill="#00e000" stroke="#000" stroke-width="1"`;
    const text = `<text x="${x}" y="${ty}" ${look}>${label}</text>`;
    return box + text;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`;
  const drawn = img.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
  const ext = extname(out).toLowerCase();
  const encoded = ext === '.png' ? drawn.png() : ext === '.webp' ? drawn.webp() : drawn.jpeg({ quality: 90 });
  await encoded.toFile(out);
}
