"""What the bench scripts measure with: CPU seconds of this process and its worker processes."""
import resource


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (worker processes, the sandbox's runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
