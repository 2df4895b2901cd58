"""`inspect --format`: the same stdout, exit status and error wording as `skopeo inspect --format`.

One table of templates, each run by skopeo 1.9.3 and by fastsync over the same dir: images, with and
without --config. The whole table goes through fastsync's library path (api.inspect_image + the
template renderer, as the CLI calls them); a few rows also go through the CLI itself.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fastsync import api
from fastsync.cli.gotemplate import TemplateError
from fastsync.cli.gotemplate.parse import unquote
from fastsync.cli.inspect_format import is_json, render
from support.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, make_image, make_layer, write_dir
from support.imagemodel import canonical_json, sha256_digest
from helpers import fastsync, ok

TEMPLATES = [
    # fields, nested fields, map keys, methods
    "{{.Name}}", "{{.Tag}}", "{{.Digest}}", "{{.RepoTags}}", "{{.Created}}", "{{.DockerVersion}}", "{{.Labels}}",
    "{{.Architecture}}", "{{.Os}}", "{{.Layers}}", "{{.Env}}", "{{.Labels.foo}}", "{{.Labels.nope}}",
    "{{.Labels.nope.more}}", "{{index .Labels \"a.b\"}}|", "{{index .Labels \"zz\"}}|", "{{.Digest.Encoded}}",
    "{{.Digest.Algorithm}}", "{{.Digest.Hex}} {{.Digest.String}} {{.Digest.Validate}}",
    "{{.Created.Year}} {{.Created.Month}} {{.Created.Day}} {{.Created.Weekday}} {{.Created.YearDay}}",
    "{{.Created.Unix}} {{.Created.UnixNano}} {{.Created.Nanosecond}} {{.Created.IsZero}} {{.Created.UTC}}",
    '{{.Created.Format "2006-01-02T15:04:05.000Z07:00 Jan January _2 03PM pm .999 -0700 -07 Z0700 Monday"}}',
    '{{.Created.Format "Mon Jan 2 15:04:05 MST 2006"}}', "{{(.Created).Year}}",
    "{{.Config}}", "{{.Config.Cmd}} {{.Config.Entrypoint}} {{.Config.User}} {{.Config.WorkingDir}}",
    "{{.Config.ExposedPorts}} {{.Config.Volumes}} {{.Config.StopSignal}} {{.Config.ArgsEscaped}}",
    "{{.RootFS.Type}} {{.RootFS.DiffIDs}}", "{{.History}}", "{{(index .History 0).Created}}",
    "{{range .History}}{{.CreatedBy}}|{{.EmptyLayer}}|{{.Comment}};{{end}}", "{{.OS}} {{.Author}} {{.Variant}}",
    # whole values
    "{{.}}", "{{$}}", '{{printf "%v" .}}', '{{printf "%+v" .}}', '{{printf "%T %T %T" .Created .Labels .}}',
    # range, if, with, variables
    "{{range .Layers}}{{.}} {{end}}", "{{range $i, $v := .Layers}}{{$i}}={{$v}} {{end}}",
    "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "{{range .RepoTags}}x{{else}}no tags{{end}}",
    "{{with .Tag}}x{{else}}none{{end}}", "{{with .Labels}}{{.foo}}{{end}}",
    '{{if eq .Os "linux"}}L{{else if eq .Os "x"}}X{{else}}O{{end}}',
    "{{$x := .Os}}{{$x}}{{$x = \"z\"}}{{$x}}",
    "{{range .Layers}}{{if eq . \"\"}}{{break}}{{end}}{{.}};{{continue}}{{end}}",
    "{{and 1 0 \"x\"}} {{or 0 \"\" \"z\"}} {{not .Labels.nope}} {{and .Os .Architecture}}",
    '{{block "b" .Os}}[{{.}}]{{end}}',
    # functions, pipelines
    "{{len .Layers}} {{.Os | len}} {{ .Labels | len }}", '{{"a" | printf "%s-%s" "b"}}',
    '{{printf "%s|%d|%v" .Labels.nope 3 .Layers}}', '{{printf "%d %s" "x"}}', '{{printf "%d %!" 1 2}}',
    '{{printf "%5.2f|%-6s|%06d|%x|%X|%q|%t|%v" 3.14159 "ab" 42 "hi" 255 "a\\"b" true 1e6}}',
    '{{printf "%5s|%-5d|%+d|% d|%#x|%o|%b|%c|%U|%e|%g|%8.3e" "ab" 3 4 5 255 8 5 65 65 1234.5 0.000012 1234.5}}',
    '{{printf "%q" .Layers}} {{printf "%x" .Os}} {{printf "%v" .Labels}} {{printf "%s" .Created}}',
    '{{print 1 2 "a" "b" 3}}', '{{println 1 "a"}}', '{{html "<a&b>\\"\'"}} {{js "<a>\'\\"="}} {{urlquery "a b&c/d"}}',
    "{{slice .Digest 0 6}} {{slice .Layers 1}}", "{{(1)}}{{(.Os) | printf \"%s\"}}",
    "{{'a'}} {{0x10}} {{1e3}} {{1.5}} {{-3}} {{017}}",
    "{{eq 1 1}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}}",
    '{{lt "a" "b"}} {{eq .Os "linux" "x"}}',
    # whitespace, comments, escapes, tabs (skopeo's tabwriter drops what follows the last tab-free line)
    "{{- .Os -}}  ", "  {{- .Os}}  ", "{{/* c */}}x", "{{- /* c */ -}} x",
    "a\\tb", "a{{.Os}}\\tb\\n{{.Architecture}}\\tcc",
    "{{range .Layers}}{{.}}\\t{{end}}x", "l1\\nl2", "table {{.Os}} {{.Architecture}}", "x\\tyy\\nzzz\\tw\\nend",
    # errors
    "{{.Foo}}", "{{.ThisIsAVeryLongFieldNameThatFails}}", "{{foo .}}", "{{len .Labels.nope}}", "{{.Created.Foo}}",
    "{{.Name.Foo}}", "{{$.Foo}}", "{{index .Layers 5}}", "{{len 3}}", "{{eq .Layers .Env}}", '{{eq 1 "a"}}',
    "{{if}}", "{{.Name", "{{end}}", "{{range .Layers}}", "{{else}}", "{{$y}}", "{{nil}}", "{{.Os 1}}", "{{printf}}",
    '{{define "x"}}y{{end}}', '{{template "x"}}', "{{.Os | .Architecture}}", "{{1 | .Os}}", '{{"x" | 1}}',
    "{{.Created.Date}}", "{{.Created.Format 3}}", "{{.Created.Format}}", "{{range .Layers}}{{.}}\\n{{end}}{{.Foo}}",
    "{{range .Os}}{{end}}", '{{"unterminated}}', "{{.Os}", "{{3x}}", "{{lt .Layers 1}}", "{{index .Os 1}}",
    "{{.Os)}}", "{{(.Os}}", "{{/* x }}", "{{9223372036854775808}}", "{{range $a, $b, $c := .Labels}}{{end}}",
    "{{slice .Os 3 1}}", "{{.Labels.foo 1}}", "{{1 2}}", "{{printf 1}}", "{{.Created.Clock}}",
    "{{with $a, $b := .Os}}{{end}}",
    # JSON
    "json", "{{json .}}", " {{ json }} ", "{{json .Labels}}",
]


def _rich_image(path: Path) -> None:
    raw, gz = make_layer(7, 2048)
    layer = {"mediaType": OCI_LAYER_GZIP, "size": len(gz), "digest": sha256_digest(gz)}
    config = {
        "created": "2023-05-06T07:08:09.123456789Z", "author": "Fast Sync <fs@example.com>",
        "architecture": "arm64", "variant": "v8", "os": "linux",
        "config": {"User": "1000:1000", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Env": ["A=1", "B=<&>"],
                   "Entrypoint": ["/bin/app"], "Cmd": ["--help"], "Volumes": {"/data": {}}, "WorkingDir": "/srv",
                   "Labels": {"foo": "bar", "a.b": "c", "z": "<&>"}, "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(raw)]},
        "history": [{"created": "2023-05-06T07:08:09Z", "created_by": "ADD app /bin/app", "comment": "the app"},
                    {"created": "2023-05-06T07:08:10Z", "created_by": "ENV B=<&>", "empty_layer": True}],
    }
    config_bytes = canonical_json(config)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "size": len(config_bytes),
                                          "digest": sha256_digest(config_bytes)},
                               "layers": [layer]})
    path.mkdir()
    (path / "version").write_bytes(b"Directory Transport Version: 1.1\n")
    (path / "manifest.json").write_bytes(manifest)
    (path / sha256_digest(config_bytes).split(":")[1]).write_bytes(config_bytes)
    (path / layer["digest"].split(":")[1]).write_bytes(gz)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fmt")
    write_dir(make_image(1, layers=2, layer_size=4096, labels={"foo": "bar", "a.b": "c"}), root / "simple")
    _rich_image(root / "rich")
    return {"simple": root / "simple", "rich": root / "rich"}


def _skopeo_error(stderr: bytes) -> str:
    """The msg of skopeo's `level=fatal msg="..."` line, unquoted."""
    m = re.search(r'level=fatal msg=("(?:[^"\\]|\\.)*")', stderr.decode())
    assert m, stderr
    return unquote(m.group(1))


def _no_addresses(out: bytes) -> bytes:
    """Pointers print as Go heap addresses, which differ from run to run."""
    return re.sub(rb"0xc[0-9a-f]{9}", b"0xADDRESS", out)


def _ours(path: Path, template: str, config: bool) -> tuple[int, bytes, str]:
    """fastsync's (exit status, stdout, error) for the template, by the CLI's own library calls."""
    out = api.inspect_image(f"dir:{path}", config=config)
    assert isinstance(out, dict)
    if is_json(template):
        from fastsync.engine.describe import go_json
        return 0, (go_json(out) + "\n").encode(), ""
    try:
        return 0, render(template, out, config).encode(), ""
    except TemplateError as exc:
        return exc.exit_code, exc.partial.encode(), str(exc)  # type: ignore[attr-defined]


CASES = [(t, img, config) for t in TEMPLATES for img, config in (("simple", False), ("rich", False), ("rich", True))]


@pytest.fixture(scope="module")
def theirs(images: dict[str, Path], run_skopeo) -> dict:
    def one(case):
        template, img, config = case
        proc = run_skopeo("inspect", *(["--config"] if config else []), "--format", template, f"dir:{images[img]}",
                          check=False)
        return case, proc
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_output_matches_skopeo(template: str, images: dict[str, Path], theirs: dict) -> None:
    for img, config in (("simple", False), ("rich", False), ("rich", True)):
        proc = theirs[(template, img, config)]
        code, stdout, error = _ours(images[img], template, config)
        where = f"{template!r} on {img}{' --config' if config else ''}"
        if template in ("{{.}}", "{{$}}", '{{printf "%v" .}}', '{{printf "%+v" .}}') and not config:
            # deliberate: fastsync's inspect struct also has LayersData (newer skopeo's; 1.9.3 lacks it)
            assert code == proc.returncode == 0, where
            continue
        if template in ("{{json .}}", "json", " {{ json }} ") and not config:
            ours_json, their_json = json.loads(stdout), json.loads(proc.stdout)
            assert {k: ours_json.get(k) for k in their_json} == their_json, where
            continue
        assert (code, _no_addresses(stdout)) == (proc.returncode, _no_addresses(proc.stdout)), where
        if code:
            assert error == _skopeo_error(proc.stderr), where


CLI_ROWS = ["{{.Digest}}", "{{range .Layers}}{{.}}\\n{{end}}{{.Foo}}", "{{foo .}}", "{{.Labels.foo}}\\t{{.Os}}\\nx",
            "json"]


@pytest.mark.parametrize("config", [False, True])
@pytest.mark.parametrize("template", CLI_ROWS)
def test_cli_format_matches_skopeo(template: str, config: bool, images: dict[str, Path], run_skopeo) -> None:
    args = [*(["--config"] if config else []), "--format", template, f"dir:{images['rich']}"]
    proc = run_skopeo("inspect", *args, check=False)
    ours = fastsync("inspect", *args)
    if template == "json" and not config:    # fastsync's JSON also has LayersData (see the README)
        theirs_json, ours_json = json.loads(proc.stdout), json.loads(ours.stdout)
        assert {k: ours_json.get(k) for k in theirs_json} == theirs_json
        return
    assert (ours.returncode, ours.stdout) == (proc.returncode, proc.stdout)
    if proc.returncode:
        lines = ours.stderr.decode().splitlines()
        assert lines == [f"Error: {_skopeo_error(proc.stderr)}"]


def test_format_with_raw_is_refused_as_skopeo_refuses_it(images: dict[str, Path], run_skopeo) -> None:
    proc = run_skopeo("inspect", "--raw", "--format", "{{.Digest}}", f"dir:{images['simple']}", check=False)
    ours = fastsync("inspect", "--raw", "-f", "{{.Digest}}", f"dir:{images['simple']}")
    assert ours.returncode == proc.returncode == 1
    assert ours.stderr.decode().strip() == f"Error: {_skopeo_error(proc.stderr)}"


def test_registry_image_name_and_tags_in_templates_match_skopeo(seeded_registry, run_skopeo) -> None:
    from support.images import sample_repo

    repo, tag = sample_repo("v2s2")
    ref = f"docker://{seeded_registry.host}/{repo}:{tag}"
    template = "{{.Name}}|{{range .RepoTags}}{{.}},{{end}}|{{len .Layers}}|{{.Created.Year}}"
    args = ("inspect", "--tls-verify=false", "--format", template, ref)
    assert ok(fastsync(*args)).stdout == run_skopeo(*args).stdout
    args = ("inspect", "--tls-verify=false", "--no-tags", "-f", "{{.RepoTags}}", ref)
    assert ok(fastsync(*args)).stdout == run_skopeo(*args).stdout == b"[]\n"
