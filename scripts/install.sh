#!/bin/bash
# Installs Vigía from the release it ships in on Raspberry Pi OS or Debian (bookworm, trixie;
# arm64, or x86_64 for lab machines): the bundle (`npm run release -- --with-deps` makes
# vigia-VERSION-linux-ARCH-nodeMAJOR.tgz, with the dependencies built for that architecture and
# Node.js ABI) needs neither network nor compiler; the plain release (`npm run release`,
# vigia-VERSION.tgz) installs them with npm ci. Run it again to upgrade: the code is replaced,
# the configuration and the data are kept. `--help` says the rest.
#
# Ownership is declared the systemd way rather than applied by hand: the daemon's user in
# sysusers.d, the modes and group of /etc/vigia in tmpfiles.d. A live install applies both at
# once; with --root (an image) they are applied at the image's first boot, so an unprivileged
# image build needs no user of its own and chowns nothing.
set -euo pipefail
umask 022

readonly EX_FAILED=1 EX_USAGE=64 EX_UNAVAILABLE=69 EX_NOPERM=77
readonly MIN_NODE_MAJOR=20
readonly PROFILES='pole gantry patrol community'
# The production dependencies take about 400 MiB; npm's cache and the old copy kept during an
# upgrade need room next to them. Copying a bundle's needs its own size, plus some slack.
readonly MIN_FREE_MIB=1024 BUNDLE_SLACK_MIB=64

readonly APP=/opt/vigia
readonly BIN_LINK=/usr/local/bin/vigia
readonly ETC=/etc/vigia
readonly CONFIG=$ETC/vigia.yaml
readonly DATA=/var/lib/vigia
readonly UNIT_DIR=/usr/lib/systemd/system
readonly UNIT=vigia.service
readonly WANTS_BASE=/etc/systemd/system
readonly SYSUSERS=/usr/lib/sysusers.d/vigia.conf
readonly TMPFILES=/usr/lib/tmpfiles.d/vigia.conf
# Written into node_modules: what its native addons were built for, so an upgrade with the same
# lockfile, Node ABI and architecture keeps them instead of compiling again. A bundle carries it
# too (scripts/release.mjs writes it), and its node_modules is used where it matches.
readonly DEPS_KEY_FILE=node_modules/.vigia-installed-for

usage() {
  cat <<'EOF'
Usage: install.sh --profile pole|gantry|patrol|community [--root DIR]
       install.sh [--root DIR]                      upgrade: replace the code, keep the configuration
       install.sh --uninstall [--purge] [--root DIR]

Installs Vigía: the code in /opt/vigia with its production dependencies (those bundled in the
release when they were built for this architecture and Node.js; otherwise npm ci --omit=dev, which
needs the npm registry and compiles better-sqlite3), the `vigia` command (/usr/local/bin/vigia),
the system user `vigia` (groups gpio, dialout, video, plugdev, bluetooth), /etc/vigia/vigia.yaml from the profile's
example if there is none yet, with empty 0640 files for the secrets it names, and the systemd unit,
enabled. A first install does not start the daemon: edit the configuration first. An upgrade
restarts it if it was running.

  --profile P   the example configuration to start from (needed only when there is none yet)
  --root DIR    install into the tree DIR (an image being built) without touching this system:
                no systemctl, no user created; the unit is enabled by its wants symlink, the user
                and the ownership of /etc/vigia are created at DIR's first boot (sysusers.d,
                tmpfiles.d). The dependencies are for this machine's architecture and Node.js
                (the bundle's when it was built for them).
  --uninstall   stop and disable the daemon, remove the code, the command and the unit; keep
                /etc/vigia, /var/lib/vigia and the user
  --purge       with --uninstall: remove the configuration, the data and the user too
  -h, --help    this text

On a device, as a user with sudo, the bundle for its architecture (no network, no compiler):
  scp vigia-VERSION-linux-arm64-node20.tgz pi@pole:
  ssh pi@pole 'tar xzf vigia-VERSION-linux-arm64-node20.tgz && sudo package/scripts/install.sh --profile pole'
The plain release, vigia-VERSION.tgz, installs the same way but needs the npm registry and a
compiler (make, g++ and python3, installed with apt when missing).

Exit codes: 0 done, 1 a step failed, 64 bad arguments, 69 a prerequisite is missing (Node.js,
npm, compiler, operating system, disk space), 77 not run as root.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
  local code=$1
  shift
  printf 'install.sh: %s\n' "$*" >&2
  exit "$code"
}
usage_error() { die "$EX_USAGE" "$* (see --help)"; }

profile='' root='' uninstall=0 purge=0
while (($# > 0)); do
  case $1 in
    --profile)
      (($# >= 2)) || usage_error '--profile needs one of: pole, gantry, patrol, community'
      profile=$2
      shift 2
      ;;
    --profile=*) profile=${1#*=} && shift ;;
    --root)
      if (($# < 2)) || [[ -z $2 ]]; then usage_error '--root needs a directory'; fi
      root=$2
      shift 2
      ;;
    --root=*) root=${1#*=} && shift ;;
    --uninstall) uninstall=1 && shift ;;
    --purge) purge=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [[ -n $profile && " $PROFILES " != *" $profile "* ]]; then
  usage_error "unknown profile '$profile': use pole, gantry, patrol or community"
fi
((purge == 0 || uninstall == 1)) || usage_error '--purge goes with --uninstall'
((uninstall == 0)) || [[ -z $profile ]] || usage_error '--profile does not go with --uninstall'

# ROOT prefixes every path written; LIVE says whether this system is the target.
if [[ -n $root ]]; then
  [[ -d $root ]] || usage_error "--root $root is not a directory"
  ROOT=$(cd "$root" && pwd -P)
  [[ $ROOT != / ]] || ROOT=''
  LIVE=0
else
  ROOT=''
  LIVE=1
  ((EUID == 0)) || die "$EX_NOPERM" 'installing on this system needs root: run it with sudo (or --root DIR for an image)'
fi
r() { printf '%s%s' "$ROOT" "$1"; }

# A step that fails names itself; the staging copy of an unfinished install is removed.
stage=''
trap 'die "$EX_FAILED" "failed (line $LINENO): $BASH_COMMAND"' ERR
trap '[[ -z $stage ]] || rm -rf "$stage"' EXIT

# ---------------------------------------------------------------------------------------------
# Uninstall

# Removes the units (and their drop-in directories) named by a copy of the package's systemd/.
remove_units_of() {
  local dir=$1/systemd f name
  [[ -d $dir ]] || return 0
  for f in "$dir"/*; do
    [[ -f $f ]] || continue
    name=${f##*/}
    rm -f "$(r "$UNIT_DIR/$name")"
    rm -rf "$(r "$UNIT_DIR/$name.d")"
    find "$(r "$WANTS_BASE")" -path "*.wants/$name" -type l -delete 2>/dev/null || true
  done
}

remove_user() {
  if ((LIVE)); then
    if getent passwd vigia >/dev/null; then userdel vigia; fi
    if getent group vigia >/dev/null; then groupdel vigia; fi
  elif grep -qs '^vigia:' "$(r /etc/passwd)"; then
    if ((EUID == 0)); then
      userdel --root "${ROOT:-/}" vigia
      if grep -qs '^vigia:' "$(r /etc/group)"; then groupdel --root "${ROOT:-/}" vigia; fi
    else
      say "The user vigia in $(r /etc/passwd) is left: removing it there needs root."
    fi
  fi
}

if ((uninstall)); then
  if ((LIVE)) && systemctl cat "$UNIT" >/dev/null 2>&1; then
    systemctl disable --now "$UNIT" || true
  fi
  remove_units_of "$(r "$APP")"
  rm -f "$(r "$UNIT_DIR/$UNIT")"
  rm -rf "$(r "$UNIT_DIR/$UNIT.d")"
  find "$(r "$WANTS_BASE")" -path "*.wants/$UNIT" -type l -delete 2>/dev/null || true
  if ((LIVE)); then
    systemctl daemon-reload
    systemctl reset-failed "$UNIT" 2>/dev/null || true
  fi
  if [[ -L $(r "$BIN_LINK") ]]; then rm -f "$(r "$BIN_LINK")"; fi
  rm -rf "$(r "$APP")" "$(r "$APP.new")" "$(r "$APP.old")"
  rm -f "$(r "$SYSUSERS")" "$(r "$TMPFILES")"
  if ((purge)); then
    rm -rf "$(r "$ETC")" "$(r "$DATA")"
    remove_user
    say "Vigía removed with its configuration ($ETC), data ($DATA) and user."
  else
    say "Vigía removed. Kept: the configuration in $ETC, the data in $DATA and the user vigia" \
      "(install.sh --uninstall --purge removes them)."
  fi
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Checks, before anything is written

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
for f in package.json package-lock.json dist/cli.js "systemd/$UNIT"; do
  [[ -e $src/$f ]] || die "$EX_UNAVAILABLE" "$src is not a Vigía release ($f is missing): make one with \`npm run release\` and unpack vigia-VERSION.tgz"
done

if ((LIVE)); then
  [[ -d /run/systemd/system ]] || die "$EX_UNAVAILABLE" 'systemd is not running this system: Vigía runs as a systemd service'
  os_field() { sed -n "s/^$1=//p" /etc/os-release 2>/dev/null | tr -d '"' || true; }
  os_id=$(os_field ID) os_like=$(os_field ID_LIKE) os_codename=$(os_field VERSION_CODENAME)
  [[ $os_id == debian || $os_id == raspbian || " $os_like " == *" debian "* ]] ||
    die "$EX_UNAVAILABLE" "this is not a Debian-based system (ID=${os_id:-unknown}): Vigía installs on Raspberry Pi OS or Debian"
  case $os_codename in
    bookworm | trixie) ;;
    *) say "Note: ${os_codename:-this release} is neither bookworm nor trixie, which Vigía is tested on." ;;
  esac
fi

node_help="Install Node.js ${MIN_NODE_MAJOR} or later. On Raspberry Pi OS / Debian trixie: sudo apt install nodejs npm.
On bookworm (its nodejs is 18), from NodeSource:
  curl -fsSL https://deb.nodesource.com/setup_22.x -o nodesource_setup.sh && sudo bash nodesource_setup.sh && sudo apt install -y nodejs"
node_bin=$(command -v node) || die "$EX_UNAVAILABLE" "Node.js is not installed. $node_help"
node_version=$("$node_bin" -p 'process.versions.node')
((${node_version%%.*} >= MIN_NODE_MAJOR)) || die "$EX_UNAVAILABLE" "Node.js $node_version is too old. $node_help"
node_arch=$("$node_bin" -p 'process.arch')
case $node_arch in
  arm64 | x64) ;;
  *) die "$EX_UNAVAILABLE" "Node.js here is built for $node_arch: Vigía needs a 64-bit system (arm64, or x86_64): Raspberry Pi OS (64-bit)" ;;
esac

version=$("$node_bin" -p 'require(process.argv[1]).version' "$src/package.json")
deps_key="$(sha256sum <"$src/package-lock.json" | cut -d' ' -f1) node-abi-$("$node_bin" -p 'process.versions.modules') $node_arch"
# A key, readable: "arm64, Node.js ABI 115", and whether it is for another lockfile than this release's.
describe_key() {
  local lock abi arch
  read -r lock abi arch <<<"$1"
  printf '%s, Node.js ABI %s' "${arch:-unknown}" "${abi#node-abi-}"
  if [[ $lock != "${deps_key%% *}" ]]; then printf ", for another package-lock.json than this release's"; fi
}
# Where the dependencies come from: the installed ones, kept (an upgrade with the same lockfile,
# Node ABI and architecture); the release's own node_modules (a bundle built for this system);
# or npm ci, from the registry, compiling better-sqlite3.
deps_from=npm
bundle_key=$(cat "$src/$DEPS_KEY_FILE" 2>/dev/null) || bundle_key=''
if [[ $(cat "$(r "$APP/$DEPS_KEY_FILE")" 2>/dev/null) == "$deps_key" ]]; then
  deps_from=installed
elif [[ -n $bundle_key && $bundle_key == "$deps_key" ]]; then
  deps_from=bundle
elif [[ -n $bundle_key ]]; then
  say "The dependencies bundled in this release were built for $(describe_key "$bundle_key");" \
    "this system is $(describe_key "$deps_key") (Node.js $node_version). Installing them with npm ci" \
    "instead, which needs the npm registry and a compiler. The bundle for this system is" \
    "vigia-$version-linux-$node_arch-node${node_version%%.*}.tgz (npm run release -- --with-deps on such a machine)."
fi

if [[ $deps_from == npm ]]; then
  command -v npm >/dev/null || die "$EX_UNAVAILABLE" "npm is not installed. $node_help"
  # node-gyp compiles better-sqlite3 (its prebuilt binaries would come from outside npm).
  missing=()
  for tool in make g++ python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]} > 0)); then
    ((LIVE)) || die "$EX_UNAVAILABLE" "compiling the dependencies needs ${missing[*]}: sudo apt-get install -y ${missing[*]}"
    say "Installing ${missing[*]} (better-sqlite3 is compiled on the device): apt-get install -y ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } ||
      die "$EX_UNAVAILABLE" "could not install ${missing[*]}: run sudo apt-get update && sudo apt-get install -y ${missing[*]}, then this again"
  fi
fi

config_exists=0
if [[ -e $(r "$CONFIG") ]]; then config_exists=1; fi
((config_exists)) || [[ -n $profile ]] || usage_error "there is no $CONFIG yet: name the profile to start from, --profile pole|gantry|patrol|community"

opt=$(r /opt)
probe=$opt
while [[ ! -d $probe ]]; do probe=$(dirname "$probe"); done
free_mib=$(($(df -Pk "$probe" | awk 'NR == 2 { print $4 }') / 1024))
case $deps_from in
  installed) need_mib=0 ;;
  # What is copied is at most the release itself.
  bundle) need_mib=$(($(du -sk "$src" | cut -f1) / 1024 + BUNDLE_SLACK_MIB)) ;;
  npm) need_mib=$MIN_FREE_MIB ;;
esac
if ((free_mib < need_mib)); then
  die "$EX_UNAVAILABLE" "only $free_mib MiB free on $probe; the install needs $need_mib MiB"
fi

# ---------------------------------------------------------------------------------------------
# The user (sysusers.d)

mkdir -p "$(r "${SYSUSERS%/*}")"
cat >"$(r "$SYSUSERS")" <<'EOF'
# The Vigía daemon's user (written by Vigía's install.sh). gpio, dialout and video are the
# Raspberry Pi's groups for GPIO lines, serial ports and cameras, plugdev the group rtl-sdr's udev
# rules give RTL-SDR dongles (community kits), bluetooth the group BlueZ's D-Bus policy lets talk to
# bluetoothd where it is not open to every user (personal alarm tags); one that is missing (gpio on
# a lab machine) is created.
u vigia - "Vigia edge daemon" /var/lib/vigia
m vigia gpio
m vigia dialout
m vigia video
m vigia plugdev
m vigia bluetooth
EOF
chmod 0644 "$(r "$SYSUSERS")"
if ((LIVE)); then systemd-sysusers "$SYSUSERS"; fi

# ---------------------------------------------------------------------------------------------
# The code: staged next to the old one, swapped in when complete

app=$(r "$APP")
# An earlier run stopped between its two renames: its old copy is the installed one.
if [[ ! -e $app && -d $app.old ]]; then mv "$app.old" "$app"; fi
rm -rf "$app.new" "$app.old"
mkdir -p "$opt"
stage=$app.new
mkdir -m 0755 "$stage"
mapfile -t payload < <("$node_bin" -p 'require(process.argv[1]).files.join("\n")' "$src/package.json")
for f in "${payload[@]}" package.json package-lock.json README.md LICENSE; do
  [[ -e $src/$f ]] || continue
  mkdir -p "$(dirname "$stage/$f")"
  cp -R --preserve=mode,timestamps "$src/$f" "$stage/$f"
done
chmod 0755 "$stage/dist/cli.js"

if [[ $deps_from == installed ]]; then
  say "Dependencies unchanged (same lockfile, Node ABI and architecture): keeping them."
  # Hard links: the running daemon keeps its modules until it is restarted on the new code.
  cp -al "$app/node_modules" "$stage/node_modules"
elif [[ $deps_from == bundle ]]; then
  say "Dependencies bundled in the release (built for $(describe_key "$deps_key")): copying them, no download, no compiler needed."
  # Not cp -a: the copy belongs to root like the rest of the code, not to whoever unpacked the release.
  cp -R --preserve=mode,timestamps,links "$src/node_modules" "$stage/node_modules"
else
  say "Installing the production dependencies (npm ci --omit=dev; compiling better-sqlite3 takes a few minutes on a Pi)..."
  # allowScripts in package.json denies onnxruntime-node's CUDA download; npm versions that do not
  # read it (npm 10) obey this variable instead. Niced: during an upgrade the daemon still runs.
  (cd "$stage" && ONNXRUNTIME_NODE_INSTALL=skip npm_config_update_notifier=false \
    nice -n 10 npm ci --omit=dev --no-audit --no-fund) ||
    die "$EX_FAILED" "npm ci --omit=dev failed in $stage (the installed version is unchanged)"
fi
# (The kept ones already say so, through the hard link.)
if [[ $deps_from != installed ]]; then printf '%s\n' "$deps_key" >"$stage/$DEPS_KEY_FILE"; fi

upgrade=0
if [[ -d $app ]]; then
  upgrade=1
  remove_units_of "$app"
  mv "$app" "$app.old"
fi
mv "$stage" "$app"
stage=''
rm -rf "$app.old"

mkdir -p "$(r "${BIN_LINK%/*}")"
ln -sfn "../../..$APP/dist/cli.js" "$(r "$BIN_LINK")"

# ---------------------------------------------------------------------------------------------
# Configuration: written only if absent; secret files named by it created empty, never filled

mkdir -p "$(r "$ETC")"
chmod 0750 "$(r "$ETC")"
placeholders=()
if ((!config_exists)); then
  tmp=$(r "$CONFIG.new")
  # The example's JSON Schema reference, made to work from /etc/vigia.
  sed "s|=\./vigia\.schema\.json|=$APP/config/vigia.schema.json|" "$src/config/$profile.example.yaml" >"$tmp"
  chmod 0640 "$tmp"
  mv "$tmp" "$(r "$CONFIG")"
  while read -r secret_file; do
    if [[ ! -e $(r "$secret_file") ]]; then
      install -m 0640 /dev/null "$(r "$secret_file")"
      placeholders+=("$secret_file")
    fi
  done < <(grep -v '^[[:space:]]*#' "$(r "$CONFIG")" | grep -o "file: $ETC/[A-Za-z0-9._-]*" | cut -d' ' -f2 | sort -u)
fi
mapfile -t named < <(grep -v '^[[:space:]]*#' "$(r "$CONFIG")" | grep -o "$ETC/[A-Za-z0-9._-]*" | sort -u)

mkdir -p "$(r "${TMPFILES%/*}")"
{
  say "# Ownership and modes of Vigía's configuration (written by Vigía's install.sh): readable by"
  say "# the daemon's group, by no other user. Applied at install and at every boot."
  say "d $ETC 0750 root vigia -"
  say "z $CONFIG 0640 root vigia -"
  for f in "${named[@]}"; do [[ $f == "$CONFIG" ]] || say "z $f 0640 root vigia -"; done
} >"$(r "$TMPFILES")"
chmod 0644 "$(r "$TMPFILES")"
if ((LIVE)); then systemd-tmpfiles --create "$TMPFILES"; fi

# ---------------------------------------------------------------------------------------------
# The unit and its drop-ins, as systemd/ has them; enabled

# The unit runs /usr/bin/node (Debian's and NodeSource's); a Node.js elsewhere is named instead:
# the one checked above, or in an image the one it holds.
node_path=/usr/bin/node
if ((LIVE)) || [[ ! -e $(r /usr/bin/node) && -e $(r "$node_bin") ]]; then node_path=$node_bin; fi
install_unit_file() { # SOURCE TARGET
  sed "s|/usr/bin/node\b|$node_path|g" "$1" >"$2"
  chmod 0644 "$2"
}
mkdir -p "$(r "$UNIT_DIR")"
for f in "$app"/systemd/*; do
  [[ -f $f ]] || continue
  install_unit_file "$f" "$(r "$UNIT_DIR/${f##*/}")"
done
for d in "$app"/systemd/*.d; do
  [[ -d $d ]] || continue
  mkdir -p "$(r "$UNIT_DIR/${d##*/}")"
  for f in "$d"/*.conf; do
    [[ -f $f ]] || continue
    install_unit_file "$f" "$(r "$UNIT_DIR/${d##*/}/${f##*/}")"
  done
done

if ((LIVE)); then
  systemctl daemon-reload
  systemctl reenable --quiet "$UNIT"
else
  find "$(r "$WANTS_BASE")" -path "*.wants/$UNIT" -type l -delete 2>/dev/null || true
  mapfile -t targets < <(sed -n 's/^WantedBy=//p' "$(r "$UNIT_DIR/$UNIT")" | tr -s ' ' '\n' | sed '/^$/d')
  for target in "${targets[@]}"; do
    mkdir -p "$(r "$WANTS_BASE/$target.wants")"
    ln -sfn "$UNIT_DIR/$UNIT" "$(r "$WANTS_BASE/$target.wants/$UNIT")"
  done
fi

restarted=0
if ((LIVE && upgrade)) && systemctl is-active --quiet "$UNIT"; then
  systemctl restart "$UNIT"
  restarted=1
fi

# ---------------------------------------------------------------------------------------------
# What was done, and what the technician does next

say ''
say "Vigía $version installed in $(r "$APP") (Node.js $node_version, $node_arch)."
if ((config_exists)); then
  say "Kept the configuration $CONFIG${profile:+ (--profile $profile not applied)}."
else
  say "Wrote $CONFIG from the $profile profile."
fi
if [[ $node_path != /usr/bin/node ]]; then say "The unit runs Node.js as $node_path."; fi
if [[ ! -e $(r "$node_path") ]]; then say "Note: the unit runs $node_path, which $ROOT does not have yet."; fi
if ((!LIVE)); then
  say "Into ${ROOT:-/} without touching the running system: the user vigia and the ownership of $ETC"
  say "(root:vigia) are applied at its first boot by systemd-sysusers and systemd-tmpfiles"
  say "($SYSUSERS, $TMPFILES); $UNIT is enabled."
fi
if ((restarted)); then
  say "The daemon was restarted on the new code: systemctl status vigia"
  exit 0
fi
step=1
next() { say "  $step. $*" && step=$((step + 1)); }
say 'Next:'
((config_exists)) || next "Edit the configuration (device.id, device.site, mqtt.url, the hardware): sudoedit $CONFIG"
if ((${#placeholders[@]} > 0)); then
  next 'Put each secret in its file, created empty with mode 0640 for the daemon (sudoedit FILE):'
  for f in "${placeholders[@]}"; do say "       $f"; done
fi
missing_files=()
for f in "${named[@]}"; do [[ -e $(r "$f") ]] || missing_files+=("$f"); done
if ((${#missing_files[@]} > 0)); then
  next "Copy in the files the configuration names that are not there yet: ${missing_files[*]}"
fi
next "Check it as the daemon's user: sudo -u vigia vigia config check $CONFIG"
if ((LIVE)); then
  next 'Start the daemon (from then on it starts at every boot by itself): sudo systemctl start vigia'
  say "To run vigia status without sudo, join the group vigia: sudo usermod -aG vigia ${SUDO_USER:-USER}"
else
  next 'Boot the image: the daemon starts by itself.'
fi
