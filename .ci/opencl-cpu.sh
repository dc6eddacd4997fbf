# shellcheck shell=bash
# The OpenCL CPU runtimes the tests run the kernel source on. Source this
# file with the virtual environment active, then pick one runtime:
#
#   opencl_cpu intel   Intel's OpenCL CPU runtime, from the `test` extra
#                      (intel-opencl-rt; any x86-64 CPU, AMD's included)
#   opencl_cpu pocl    PoCL from Debian (apt-get install pocl-opencl-icd:
#                      PoCL 3.1 on LLVM 15)
#
# Each sets OCL_ICD_VENDORS to that runtime's ICD file alone, so it is the
# only OpenCL platform the tests see. The PoCL that the pyopencl wheel
# bundles (LLVM 14) is left out: it names CPUs that LLVM 14 does not know
# (AMD family 26 and later) "generic" and then fails every kernel build.
#
# The two execute a work-group differently: PoCL runs its work-items one
# after another between barriers, Intel's runtime runs them side by side in
# vector lanes, so a missing barrier shows on Intel's even where PoCL's
# order hides it. Intel's runtime offers 256 KiB of local memory by
# default; it is set to PoCL's 1 MiB so that the same shapes run on both.

opencl_cpu() {
    case "$1" in
    intel)
        local lib="$VIRTUAL_ENV/lib/libintelocl.so"
        local icd="$VIRTUAL_ENV/etc/OpenCL/vendors/rnn-gpu-intel-cpu.icd"
        if [ ! -e "$lib" ]; then
            echo "error: $lib is missing: pip install -e '.[test]' in an active virtual environment" >&2
            return 1
        fi
        # The wheel's own intel-cpu.icd names an unfilled install prefix: this one names the library.
        mkdir -p "$(dirname "$icd")" && printf '%s\n' "$lib" >"$icd"
        export OCL_ICD_VENDORS="$icd" CL_CONFIG_CPU_FORCE_LOCAL_MEM_SIZE=1MB
        ;;
    pocl)
        local icd=/etc/OpenCL/vendors/pocl.icd
        if [ ! -e "$icd" ]; then
            echo "error: $icd is missing: apt-get install pocl-opencl-icd" >&2
            return 1
        fi
        export OCL_ICD_VENDORS="$icd"
        unset CL_CONFIG_CPU_FORCE_LOCAL_MEM_SIZE
        ;;
    *)
        echo "error: opencl_cpu takes intel or pocl, not '$1'" >&2
        return 2
        ;;
    esac
}
