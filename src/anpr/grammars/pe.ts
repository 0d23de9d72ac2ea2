import { buildGrammar, type FormatSpec, grouped } from './engine.js';

/**
 * Peru: the plate of the 2010 regulation (Reglamento de Placas Únicas Nacionales de Rodaje),
 * six characters printed `ABC-123`. What we rely on, and what we assume:
 *
 * - `current` L·AA·NNN: the first character is a letter (it names the region or the vehicle
 *   class), the second and third are letters or digits (`A1B-234` and `ABC-123` both exist), the
 *   last three are digits. The middle two positions take either class, so no O/0-style repair is
 *   made there: only the first (a letter) and the last three (digits) are repaired.
 * - Motorcycle plates (shorter, two rows) and the pre-2010 series are not modelled; their layouts
 *   are not checked.
 *
 * Letters: all 26 (not checked for exclusions). The layout is broad: it also accepts every Chilean
 * `car_old` plate (AB1234) and every old Argentine plate (ABC123). Beside `cl` the secondary prior
 * lets the Chilean reading win; beside `ar` the grammar listed first wins a tie.
 */
export const PE_FORMATS: FormatSpec[] = [{ name: 'current', pattern: 'LAANNN', display: grouped('-', 3, 3) }];

export const pe = buildGrammar({ name: 'pe', country: 'pe', formats: PE_FORMATS, correct: true, trim: true });
