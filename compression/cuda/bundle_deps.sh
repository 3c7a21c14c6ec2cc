#!/usr/bin/env bash
# Copies what check_on_gpu.sh needs beyond PyTorch and the CUDA toolkit (Abseil headers
# and libraries, nlohmann/json) from this Debian machine into DIR, for a GPU machine that
# has neither and cannot fetch them: carry DIR there and run with DEPS_DIR=DIR.
#
#   compression/cuda/bundle_deps.sh .gpu_deps     (about 7 MB; .gpu_deps is git-ignored)
set -euo pipefail
dir="${1:?usage: bundle_deps.sh DIR}"
rm -rf "$dir"
mkdir -p "$dir/include" "$dir/lib"
cp -r /usr/include/absl /usr/include/nlohmann "$dir/include/"
libs="$(pkg-config --libs absl_status absl_statusor absl_strings absl_synchronization)"
echo "$libs" >"$dir/absl_libs.txt"
libdir="$(pkg-config --variable=libdir absl_status)"
# Plain files, no symbolic links (a device carry moves links as links): each library
# under its link-time name (libX.so) and its run-time name (the SONAME).
for name in $(grep -o -- '-labsl_[a-z0-9_]*' <<<"$libs" | sed 's/^-l//'); do
  cp -L "$libdir/lib$name.so" "$dir/lib/"
  soname="$(objdump -p "$libdir/lib$name.so" | awk '/SONAME/ {print $2}')"
  cp -L "$libdir/$soname" "$dir/lib/"
done
echo "bundle_deps: $(du -sh "$dir" | cut -f1) in $dir ($(ls "$dir/lib" | wc -l) library files)"
