import { ADMIN_JS } from './page/admin.js';
import { ALARMS_JS } from './page/alarms.js';
import { BOOT_JS, CORE_JS } from './page/core.js';
import { DEVICES_JS } from './page/devices.js';
import { HOTLIST_JS } from './page/hotlist.js';
import { INDEX_HTML } from './page/html.js';
import { SEARCH_JS } from './page/search.js';
import { APP_CSS } from './page/style.js';

/**
 * The operator console's page: one HTML file, one script, one stylesheet, served by the console
 * server from memory (nothing fetched from elsewhere; the Content-Security-Policy allows only
 * this origin). Spanish first, English on the toggle. Plain DOM code, one part per concern in
 * page/: the page is small, and a build step for a framework would be the largest part of it.
 */

export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export { APP_CSS, INDEX_HTML };

export const APP_JS = [CORE_JS, ALARMS_JS, DEVICES_JS, SEARCH_JS, HOTLIST_JS, ADMIN_JS, BOOT_JS].join('\n');
