"""The programs the local stack runs: Java 17+ (the Kafka broker), Maven (fetches its jars
once) and redis-server. Each is looked up with an error that says what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from recommender.core.errors import InfraError

MIN_JAVA = 17


def parse_java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output ('1.8.0_292' -> 8, '17.0.15' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_java() -> str:
    """Path of a Java 17+ ``java`` ($JAVA_HOME first, like Kafka's scripts, then PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if not java:
        raise InfraError(
            f"Java {MIN_JAVA}+ not found on PATH: install openjdk-17-jre-headless "
            "(Kafka 4 needs Java 17 or newer), or set JAVA_HOME"
        )
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"cannot run {java} -version: {exc}") from exc
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise InfraError(
            f"cannot tell the Java version of {java} (`java -version` said: "
            f"{(result.stderr or result.stdout).strip()[:200]!r}): Kafka 4 needs Java {MIN_JAVA}+"
        )
    if major < MIN_JAVA:
        raise InfraError(
            f"Java {major} at {java} is too old: Kafka 4 needs Java {MIN_JAVA}+; install "
            "openjdk-17-jre-headless and put it first on PATH (or set JAVA_HOME)"
        )
    return java


def _on_path(program: str, missing: str) -> str:
    """Path of ``program`` on PATH; InfraError ``missing`` (what to install) when absent."""
    path = shutil.which(program)
    if not path:
        raise InfraError(missing)
    return path


def find_maven() -> str:
    """Path of ``mvn``."""
    return _on_path(
        "mvn",
        "Maven (mvn) not found on PATH: install maven (apt-get install maven); zmot uses it "
        "once per state dir to fetch the Kafka broker jars from Maven Central",
    )


def find_redis_server() -> str:
    """Path of ``redis-server``."""
    return _on_path(
        "redis-server",
        "redis-server not found on PATH: apt-get install redis-server (or brew install redis)",
    )
