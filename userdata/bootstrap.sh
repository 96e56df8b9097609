#!/bin/sh
# probe bootstrap, rendered by `probe userdata` (probe @VERSION@). Run once by cloud-init as
# root, it writes probe's settings and starts the probe-fetch service, which downloads
# probe, checks it against the sha256 pinned below and installs the probe service. The
# fetch keeps retrying after boot, so cloud-init never waits for a network path that may
# come later (an S3 gateway endpoint, a relay). Running it again changes nothing.
#
# Everything is inside one function, called on the last line: a truncated script defines
# nothing and runs nothing.
probe_bootstrap() {
	set -u
	umask 077
	etc=/etc/probe
	lib=/usr/local/lib/probe
	changed=no

	say() {
		line="probe.bootstrap/v1 {\"step\":\"bootstrap\",\"result\":\"$1\",\"detail\":\"$2\"}"
		printf '%s\n' "$line" >/dev/console 2>/dev/null || true
		printf '%s\n' "$line"
	}

	# Writes $2 (plus a newline) to $1 with mode $3, only when it differs.
	put() {
		printf '%s\n' "$2" >"$1.new" || return 1
		if cmp -s "$1.new" "$1"; then
			rm -f "$1.new"
		else
			chmod "$3" "$1.new" && mv -f "$1.new" "$1" || return 1
			changed=yes
		fi
	}

	arch=$(uname -m)
	case $arch in
	x86_64) sha='@SHA256_X86_64@' ;;
	aarch64 | arm64)
		arch=aarch64
		sha='@SHA256_AARCH64@'
		;;
	*)
		say unsupported-arch "probe ships for x86_64 and aarch64, not $arch"
		return 0
		;;
	esac
	if [ -z "$sha" ]; then
		say no-sha256 "no sha256 pinned for $arch: render with probe userdata --sha256 $arch=HEX"
		return 0
	fi

	mkdir -p "$etc" "$lib" || {
		say failed "cannot create $etc or $lib"
		return 1
	}
	if ! {
		put "$etc/bootstrap.env" "PROBE_ARCH='$arch'
PROBE_SHA256='$sha'
PROBE_SOURCES='@SOURCES@'
PROBE_RELAY='@RELAY@'
PROBE_RELAY_LISTEN='@RELAY_LISTEN@'" 0600 &&
			put "$etc/args" '@ARGS@' 0600 &&
			put "$lib/fetch.sh" "$(
				cat <<'PROBE_FETCH_EOF'
@FETCH@
PROBE_FETCH_EOF
			)" 0700
	}; then
		say failed "cannot write under $etc or $lib"
		return 1
	fi
	token='@TOKEN@'
	if [ -n "$token" ]; then
		put "$etc/token" "$token" 0600 || return 1
	fi
	ca='@CA@'
	if [ -n "$ca" ]; then
		put "$etc/ca.pem" "$ca" 0600 || return 1
	fi

	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		put /etc/systemd/system/probe-fetch.service "[Unit]
Description=probe bootstrap: fetch, verify and install probe (retries until a source answers)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/bin/sh $lib/fetch.sh
Restart=on-failure
RestartSec=30s

[Install]
WantedBy=multi-user.target" 0644 || return 1
		systemctl daemon-reload
		systemctl enable probe-fetch.service 2>/dev/null
		# --no-block: cloud-init goes on at once; the service waits for its network.
		if [ "$changed" = yes ]; then
			systemctl restart --no-block probe-fetch.service
		else
			systemctl start --no-block probe-fetch.service
		fi
	else
		nohup /bin/sh "$lib/fetch.sh" >/dev/null 2>&1 &
	fi
	say started "probe-fetch started for $arch (settings changed: $changed)"
}

probe_bootstrap
