"""The compiled STOMP codec and mapping (Cython, issue 15) against the pure-Python ones.

Both are built from the same source (setup.py compiles protocols/stomp/_codec.py and
_mapping.py); these tests feed both the same random and hostile input and require the
same frames, the same errors (message, snippet, receipt, frames carried), the same
buffering and the same bytes out. They also check how the implementation is chosen and
that an install without a C compiler still works.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.core import QUEUE, TEMP_QUEUE, TOPIC, Address, Message
from protocols.stomp import _codec as py_codec
from protocols.stomp import _mapping as py_mapping

ROOT = Path(__file__).resolve().parents[2]

try:
    c_codec: ModuleType = importlib.import_module("protocols.stomp._codec_c")
    c_mapping: ModuleType = importlib.import_module("protocols.stomp._mapping_c")
except ImportError:
    pytest.skip(
        "the compiled codec is not built here (no C compiler at install time)",
        allow_module_level=True,
    )

relaxed = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=300)
ALL = py_codec.CLIENT_COMMANDS | py_codec.SERVER_COMMANDS


def test_the_compiled_modules_are_compiled() -> None:
    """Not the .py files imported under another name: extension modules."""
    for module in (c_codec, c_mapping):
        assert module.__file__ is not None
        assert module.__file__.endswith(".so"), module.__file__
    assert type(c_codec.FrameParser.feed).__name__ != "function"


def _outcome(codec: ModuleType, chunks: list[bytes], version: str, kw: dict[str, Any]) -> list:
    """Everything observable from feeding `chunks`: per feed the frames or the error."""
    p = codec.FrameParser(commands=ALL, **kw)
    p.version = version
    seen: list = []
    for chunk in [*chunks, b""]:
        try:
            frames = p.feed(chunk)
            while frames and frames[-1].command in ("CONNECT", "STOMP", "CONNECTED"):
                seen.append(("frames", [(f.command, f.headers, f.body) for f in frames]))
                frames = p.feed(b"")
                if not frames:
                    break
            seen.append(("frames", [(f.command, f.headers, f.body) for f in frames]))
        except codec.StompError as exc:
            carried = [(f.command, f.headers, f.body) for f in exc.frames]
            seen.append(("error", exc.message, exc.snippet, exc.receipt, carried, str(exc)))
        seen.append(("buffered", p.buffered()))
    return seen


tokens = st.sampled_from(
    [
        b"SEND",
        b"MESSAGE",
        b"CONNECT",
        b"ACK",
        b"HELLO",
        b"\n",
        b"\r\n",
        b"\r",
        b":",
        b"\\",
        b"\\c",
        b"\\r",
        b"\\n",
        b"\\t",
        b"\x00",
        b"content-length:",
        b"receipt:",
        b"1",
        b"12",
        b"007",
        b"a",
        b"\xff",
        b"\xc3",
        b"\xa9",
        b"\xe2\x98\x83",
    ]
)
streams = st.one_of(st.binary(max_size=300), st.lists(tokens, max_size=80).map(b"".join))
limits = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "max_frame_size": st.integers(0, 40),
            "max_headers": st.integers(0, 5),
            "max_header_length": st.integers(1, 30),
            "strict": st.booleans(),
        }
    ),
    st.fixed_dictionaries({"strict": st.booleans()}),
)


@relaxed
@given(
    stream=streams,
    version=st.sampled_from(["1.0", "1.1", "1.2"]),
    kw=limits,
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_parsers_agree_on_arbitrary_input(
    stream: bytes, version: str, kw: dict[str, Any], cuts: list[int]
) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    for split in ([stream], chunks, [stream[i : i + 1] for i in range(len(stream))]):
        assert _outcome(c_codec, split, version, kw) == _outcome(py_codec, split, version, kw)


header_text = st.text(
    alphabet=st.one_of(st.sampled_from(":\\\n\r \x00"), st.characters(codec="utf-8")),
    max_size=10,
)
headers_strategy = st.one_of(
    st.dictionaries(header_text, header_text, max_size=6),
    st.lists(st.tuples(header_text, header_text), max_size=6),
)


@relaxed
@given(
    command=st.sampled_from(sorted(ALL)),
    headers=headers_strategy,
    body=st.binary(max_size=64),
    version=st.sampled_from(["1.0", "1.1", "1.2"]),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_encoders_agree_and_parse_back_alike(
    command: str, headers: Any, body: bytes, version: str, cuts: list[int]
) -> None:
    wire = c_codec.encode_frame(command, headers, body, version)
    assert wire == py_codec.encode_frame(command, headers, body, version)
    pairs = headers.items() if isinstance(headers, dict) else headers
    for name, value in pairs:
        assert c_codec.escape_header(name, version) == py_codec.escape_header(name, version)
        assert c_codec.escaper(version)(value) == py_codec.escaper(version)(value)
    bounds = [0, *sorted(c for c in cuts if c <= len(wire)), len(wire)]
    chunks = [wire[a:b] for a, b in itertools.pairwise(bounds)]
    assert _outcome(c_codec, chunks, version, {}) == _outcome(py_codec, chunks, version, {})


def test_bad_arguments_fail_alike() -> None:
    cases: list[tuple[str, Any]] = [
        ("encode_frame", ("SEND", {}, b"", "1.3")),
        ("escape_header", ("x", "2.0")),
        ("escaper", ("",)),
    ]
    for name, args in cases:
        errors = []
        for codec in (py_codec, c_codec):
            with pytest.raises(ValueError) as info:
                getattr(codec, name)(*args)
            errors.append(str(info.value))
        assert errors[0] == errors[1]
    for kw in ({"commands": frozenset()}, {"max_header_length": 0}, {"max_frame_size": -1}):
        errors = []
        for codec in (py_codec, c_codec):
            with pytest.raises(ValueError) as info:
                codec.FrameParser(**kw)
            errors.append(str(info.value))
        assert errors[0] == errors[1]
    for codec in (py_codec, c_codec):
        p = codec.FrameParser()
        with pytest.raises(ValueError, match="unsupported STOMP version"):
            p.version = "2.0"
        with pytest.raises(ValueError, match="limits must be positive"):
            p.max_frame_size = -1
        p.max_frame_size = 7
        assert (p.version, p.max_frame_size) == ("1.0", 7)


def test_frames_behave_alike() -> None:
    for codec in (py_codec, c_codec):
        frame = codec.Frame("SEND", {"a": "b"}, b"x" * 50)
        assert repr(frame) == repr(py_codec.Frame("SEND", {"a": "b"}, b"x" * 50))
        assert frame == codec.Frame("SEND", {"a": "b"}, b"x" * 50)
        assert frame != codec.Frame("SEND", {"a": "c"}, b"x" * 50)
        assert codec.Frame("ACK").headers == {}
        assert not hasattr(frame, "__dict__")
        frame.headers = {}
        frame.command = "NACK"
        assert (frame.command, frame.headers) == ("NACK", {})
        err = codec.StompError("bad", b"y" * 100, "r1")
        assert (err.message, err.snippet, err.receipt, err.frames) == ("bad", b"y" * 64, "r1", [])


# --- mapping ------------------------------------------------------------------------------

names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
text = st.text(max_size=12)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from([QUEUE, TOPIC, TEMP_QUEUE]))
    name = draw(names)
    if kind == TEMP_QUEUE:
        name = draw(st.sampled_from(["ID:me:", "ID:other:"])) + name
    props = draw(
        st.dictionaries(
            st.one_of(names, st.sampled_from(["JMSXGroupSeq", "originalDestination"])),
            st.one_of(text, st.integers(), st.booleans(), st.floats(), st.just("queue://q")),
        )
    )
    msg = Message(
        draw(st.binary(max_size=20)),
        destination=Address(kind, name),
        properties=props,
        persistent=draw(st.booleans()),
        priority=draw(st.integers(0, 9)),
        timestamp=draw(st.integers(0, 2**45)),
        expiration=draw(st.integers(0, 2**45)),
        text=draw(st.booleans()),
        correlation_id=draw(st.none() | text),
        reply_to=draw(st.none() | st.builds(Address, st.sampled_from([QUEUE, TOPIC]), names)),
        content_type=draw(st.none() | text),
        group_id=draw(st.none() | text),
        type=draw(st.none() | text),
    )
    msg.id = "ID:" + draw(names)
    msg.redelivered = draw(st.booleans())
    return msg


@relaxed
@given(messages(), st.sampled_from(["1.0", "1.1", "1.2"]), st.booleans())
def test_message_encoders_agree(msg: Message, version: str, group: bool) -> None:
    head = c_mapping.encode_message_head(msg, "ID:me", version, group_headers=group)
    assert head == py_mapping.encode_message_head(msg, "ID:me", version, group_headers=group)
    hs = c_mapping.message_headers(msg, "ID:me", group_headers=group)
    assert hs == py_mapping.message_headers(msg, "ID:me", group_headers=group)
    assert c_mapping.encode_headers(hs, version) == py_mapping.encode_headers(hs, version)
    assert c_mapping.needs_private_encoding(msg) == py_mapping.needs_private_encoding(msg)


def _fields(msg: Message) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in Message.__slots__ if name != "origin"}


send_header_names = st.sampled_from(
    [
        "priority",
        "expires",
        "persistent",
        "reply-to",
        "correlation-id",
        "content-type",
        "content-length",
        "type",
        "JMSXGroupID",
        "JMSXGroupSeq",
        "receipt",
        "destination",
        "custom",
        "x-prop",
    ]
)
send_header_values = st.one_of(
    text,
    st.integers(-(2**33), 2**33).map(str),
    st.sampled_from(["true", "false", "", "/queue/r", "/temp-queue/t", "/topic/", "+7", "0x1"]),
)


@relaxed
@given(
    st.dictionaries(st.one_of(send_header_names, names), send_header_values, max_size=8),
    st.binary(max_size=8),
)
def test_send_mapping_agrees(headers: dict[str, str], body: bytes) -> None:
    dest = Address(QUEUE, "q")
    results = []
    for mapping in (py_mapping, c_mapping):
        try:
            msg = mapping.message_from_send(headers, body, dest, "ID:me", None)
            results.append(("ok", _fields(msg)))
        except mapping.BadHeader as exc:
            results.append(("bad", str(exc)))
    assert results[0] == results[1]


@relaxed
@given(st.text(alphabet=st.sampled_from("/queutopicmr-,:x"), max_size=30))
def test_destination_parsing_agrees(text_: str) -> None:
    results = []
    for mapping in (py_mapping, c_mapping):
        try:
            results.append(repr(mapping.parse_composite(text_, "ID:me")))
        except mapping.BadHeader as exc:
            results.append(f"bad {exc}")
    assert results[0] == results[1]


# --- choosing the implementation, and installing without a compiler ------------------------


def _run(code: str, **env: str) -> str:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


SHOW = (
    "from protocols.stomp import codec, mapping, listener;"
    "print(codec.IMPLEMENTATION, mapping.IMPLEMENTATION, codec.FrameParser.__module__,"
    " mapping.message_from_send.__module__, codec.StompError.__module__);"
    "print(listener.implementation())"
)


def test_compiled_is_chosen_unless_disabled() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ZONEMQ_NO_EXTENSIONS"}
    out = subprocess.run(
        [sys.executable, "-c", SHOW],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0] == (
        "compiled compiled protocols.stomp._codec_c protocols.stomp._mapping_c"
        " protocols.stomp._codec_c"
    )
    assert out[1] == "STOMP codec and mapping: compiled (Cython)"
    for value in ("1", "yes"):
        out = _run(SHOW, ZONEMQ_NO_EXTENSIONS=value).split("\n")
        assert out[0] == (
            "python python protocols.stomp._codec protocols.stomp._mapping protocols.stomp._codec"
        )
        assert out[1] == (
            "STOMP codec: python, mapping: python (pure Python: ZONEMQ_NO_EXTENSIONS is set)"
        )
    assert _run(SHOW, ZONEMQ_NO_EXTENSIONS="0").startswith("compiled compiled")


def test_build_without_a_compiler_installs_pure_python(tmp_path: Path) -> None:
    """setup.py's build_ext with a C compiler that always fails (CC=/bin/false): the
    build still succeeds, says so in one line, and the tree it leaves runs pure Python."""
    if shutil.which("cythonize") is None and importlib.util.find_spec("Cython") is None:
        pytest.skip("Cython is not installed")
    for rel in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(
        ROOT / "protocols" / "stomp",
        tmp_path / "protocols" / "stomp",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    shutil.copy(ROOT / "protocols" / "__init__.py", tmp_path / "protocols" / "__init__.py")
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    env.pop("ZONEMQ_NO_EXTENSIONS", None)
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    notes = [line for line in build.stderr.splitlines() if line.startswith("zonemq:")]
    assert len(notes) >= 1 and all("pure Python only" in line for line in notes), build.stderr
    assert not list((tmp_path / "protocols" / "stomp").glob("*.so"))
    # The copied tree imports the pure modules (broker.core from the real tree).
    out = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": f"{tmp_path}:{ROOT}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0].startswith("python python"), out
    assert "not importable" in out[1], out


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, r"STOMP codec and mapping: compiled \(Cython\)"),
        (
            {"ZONEMQ_NO_EXTENSIONS": "1"},
            r"STOMP codec: python, mapping: python \(pure Python: ZONEMQ_NO_EXTENSIONS is set\)",
        ),
    ],
    ids=["compiled", "disabled"],
)
def test_the_broker_logs_which_codec_it_runs(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    from tests.conftest import ChildBroker

    child = ChildBroker(
        [sys.executable, "-m", "broker", "run", "--data-dir", str(tmp_path / "data")],
        tmp_path,
        **env,
    )
    try:
        child.wait_for(line, timeout=60)
        child.wait_for(r"listener stomp: 127\.0\.0\.1:\d+", timeout=60)
    finally:
        child.proc.terminate()
        child.proc.wait(30)
    # One line per process, however many listeners.
    assert "".join(child.seen).count("STOMP codec") == 1


def test_an_extension_built_from_another_source_is_not_used(tmp_path: Path) -> None:
    """Edit _codec.py after the build (a checkout after `pip install -e`): the stale
    extension is refused by the digest setup.py wrote next to it, and the log says why."""
    stomp_dir = ROOT / "protocols" / "stomp"
    records = list(stomp_dir.glob("_codec_c*.so.sha256"))
    if not records:
        pytest.skip("the extension was built without setup.py's digest")
    copy = tmp_path / "protocols" / "stomp"
    shutil.copytree(stomp_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "protocols" / "__init__.py", tmp_path / "protocols" / "__init__.py")
    env = {k: v for k, v in os.environ.items() if k != "ZONEMQ_NO_EXTENSIONS"}
    env["PYTHONPATH"] = f"{tmp_path}:{ROOT}"

    def show() -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", SHOW],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")

    assert show()[1] == "STOMP codec and mapping: compiled (Cython)"
    with open(copy / "_codec.py", "a") as f:
        f.write("\n# edited after the build\n")
    out = show()
    assert out[0].startswith("python compiled protocols.stomp._codec "), out
    assert out[1] == (
        "STOMP codec: python, mapping: compiled (pure Python: protocols.stomp._codec_c"
        " was built from another _codec.py: rebuild it)"
    )
