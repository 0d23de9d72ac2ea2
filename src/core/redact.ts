/** Redacts passwords of URLs (`scheme://user:password@host`) anywhere in a text, for messages and logs. */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^/@\s]*@/gi, '$1:***@');
}
