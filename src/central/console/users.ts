import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';

/**
 * The console's operators: a JSON file of names, roles and bcrypt hashes (mode 0600, written
 * atomically), managed with `vigia central user add|remove` or by an admin in the console. No
 * password is ever stored or logged; a wrong name costs the same time as a wrong password.
 */

export const ROLES = ['operator', 'supervisor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do, each including the one before: operators answer alarms, supervisors also see the audit and manage the hotlist, admins manage users. */
export const roleRank = (r: Role): number => ROLES.indexOf(r);

export interface User {
  name: string;
  role: Role;
  hash: string;
  created: string;
}

const NAME = /^[a-z][a-z0-9._-]{1,31}$/;
const BCRYPT_COST = 12;
export const MIN_PASSWORD_LENGTH = 10;
/** Compared against when the name is unknown, so both failures take as long. */
const DUMMY_HASH = bcrypt.hashSync('not-a-password-of-anyone', 4).replace(/^\$2b\$04\$/, `$2b$${BCRYPT_COST}$`);

export class UsersFile {
  #users: User[];

  constructor(
    readonly file: string,
    private readonly cost = BCRYPT_COST,
  ) {
    this.#users = existsSync(file) ? parse(readFileSync(file, 'utf8'), file) : [];
  }

  list(): Array<Omit<User, 'hash'>> {
    return this.#users.map(({ hash: _hash, ...u }) => u);
  }

  async add(name: string, role: Role, password: string): Promise<void> {
    if (!NAME.test(name)) throw new Error('a user name is 2 to 32 lower-case letters, digits, dots, dashes or underscores, starting with a letter');
    if (!ROLES.includes(role)) throw new Error(`role must be one of ${ROLES.join(', ')}`);
    if (password.length < MIN_PASSWORD_LENGTH) throw new Error(`the password needs at least ${MIN_PASSWORD_LENGTH} characters`);
    if (this.#users.some((u) => u.name === name)) throw new Error(`user ${name} exists already`);
    const hash = await bcrypt.hash(password, this.cost);
    this.#users.push({ name, role, hash, created: new Date().toISOString() });
    this.#save();
  }

  remove(name: string): boolean {
    const before = this.#users.length;
    this.#users = this.#users.filter((u) => u.name !== name);
    if (this.#users.length === before) return false;
    this.#save();
    return true;
  }

  /** The user if the password is right, else null (in about the same time either way). */
  async check(name: string, password: string): Promise<Omit<User, 'hash'> | null> {
    const user = this.#users.find((u) => u.name === name);
    const ok = await bcrypt.compare(password, user?.hash ?? DUMMY_HASH);
    if (!user || !ok) return null;
    const { hash: _hash, ...rest } = user;
    return rest;
  }

  #save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ users: this.#users }, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
  }
}

function parse(text: string, file: string): User[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  const users = (data as { users?: unknown }).users;
  if (!Array.isArray(users)) throw new Error(`${file}: expected {"users": [...]}`);
  return users.map((u, i) => {
    const x = u as Partial<User>;
    if (typeof x.name !== 'string' || !ROLES.includes(x.role as Role) || typeof x.hash !== 'string' || !x.hash.startsWith('$2'))
      throw new Error(`${file}: user ${i + 1} needs name, role (${ROLES.join(', ')}) and a bcrypt hash`);
    return { name: x.name, role: x.role as Role, hash: x.hash, created: String(x.created ?? '') };
  });
}
