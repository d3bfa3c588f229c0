"""Peak memory of the running process; shared by speed.py and its PyTorch worker."""
import resource


def peak_rss_kib():
    """Peak resident memory of this process since its exec (VmHWM); ``ru_maxrss`` would
    also count what the process that started it used before the exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
