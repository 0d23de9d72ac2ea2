import sharp from 'sharp';

/**
 * Synthetic scenes for tests and the demo: a plate (white, black bold sans characters) on a car on
 * a grey street, drawn with SVG. Plate geometry is given in scene pixels. They exercise the
 * pipeline end to end; accuracy is only ever measured on real photos.
 */

export interface PlateSpec {
  x: number;
  y: number;
  w: number;
  h: number;
  angle?: number;
}

export function oneLinePlate(text: string, p: PlateSpec): string {
  return `<g transform="rotate(${p.angle ?? 0} ${p.x + p.w / 2} ${p.y + p.h / 2})">
    <rect x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" rx="${p.h * 0.08}" fill="#f4f4f0" stroke="#111" stroke-width="${p.h * 0.04}"/>
    <text x="${p.x + p.w / 2}" y="${p.y + p.h * 0.78}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-weight="bold"
      font-size="${p.h * 0.72}" text-anchor="middle" fill="#111">${text}</text></g>`;
}

/**
 * A Chilean plate: three pairs, a small shield between the first two, a dot between the last
 * two, "CHILE" underneath; white for private cars, orange for taxis.
 */
export function chileanPlate(pairs: [string, string, string], p: PlateSpec, background = '#f4f4f0'): string {
  const { x, y, w, h } = p;
  const pair = (s: string, at: number) =>
    `<text x="${x + w * at}" y="${y + h * 0.68}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-weight="bold"
      font-size="${h * 0.55}" text-anchor="middle" fill="#111">${s}</text>`;
  const sx = x + w * 0.34;
  const sy = y + h * 0.4;
  const s = h * 0.11;
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="${h * 0.06}" fill="${background}" stroke="#111" stroke-width="${h * 0.03}"/>
    ${pair(pairs[0], 0.18)}${pair(pairs[1], 0.5)}${pair(pairs[2], 0.82)}
    <path d="M ${sx - s} ${sy - s} L ${sx + s} ${sy - s} L ${sx + s} ${sy + s * 0.3} Q ${sx} ${sy + s * 1.6} ${sx - s} ${sy + s * 0.3} Z" fill="#111"/>
    <circle cx="${sx}" cy="${sy - s * 0.1}" r="${s * 0.35}" fill="#fff"/>
    <circle cx="${x + w * 0.66}" cy="${y + h * 0.45}" r="${h * 0.035}" fill="#111"/>
    <text x="${x + w / 2}" y="${y + h * 0.93}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="${h * 0.14}"
      text-anchor="middle" fill="#111">CHILE</text>`;
}

export function twoLinePlate(top: string, bottom: string, p: PlateSpec): string {
  const text = (s: string, y: number) =>
    `<text x="${p.x + p.w / 2}" y="${p.y + p.h * y}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-weight="bold"
      font-size="${p.h * 0.4}" text-anchor="middle" fill="#111">${s}</text>`;
  return `<rect x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" rx="${p.h * 0.05}" fill="#f4f4f0" stroke="#111" stroke-width="${p.h * 0.03}"/>
    ${text(top, 0.44)}${text(bottom, 0.9)}`;
}

export async function scene(body: string, width = 1280, height = 720): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#8a9099"/><stop offset="1" stop-color="#4a4d52"/></linearGradient></defs>
    <rect width="${width}" height="${height}" fill="url(#g)"/>
    <rect x="${width * 0.2}" y="${height * 0.35}" width="${width * 0.6}" height="${height * 0.5}" rx="40" fill="#2b3a55"/>
    ${body}</svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer();
}
