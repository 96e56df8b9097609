# Sourced by scripts/release.sh and scripts/test.sh: the C compilers and linker of the static
# musl targets on a Debian x86_64 host (musl-tools, gcc-aarch64-linux-gnu). Kept out of
# .cargo/config.toml, so a native build on an aarch64 host (Amazon Linux has no
# aarch64-linux-gnu-gcc) is not sent to a cross compiler.
# shellcheck shell=bash
export CC_x86_64_unknown_linux_musl=musl-gcc
if [[ $(uname -m) != aarch64 ]]; then
  export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
else
  export CC_aarch64_unknown_linux_musl=musl-gcc
fi
