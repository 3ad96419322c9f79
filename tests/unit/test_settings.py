from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gateway.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_upstream_url_alone_is_a_working_default(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "upstream:\n  url: http://127.0.0.1:9000/\n"), environ={})
    assert s.upstream.url == "http://127.0.0.1:9000"
    assert s.listen.host == "127.0.0.1"
    assert s.policy.engine == "managed"


def test_every_error_is_reported_with_its_path(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "upstream:\n  url: ftp://x\n  connect_timeout: -1\nlisten:\n  port: 99999\n  bogus: 1\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    joined = "\n".join(exc.value.problems)
    assert "upstream.url: must be an http:// or https:// URL" in joined
    assert "upstream.connect_timeout" in joined
    assert "listen.port" in joined
    assert "listen.bogus" in joined
    assert len(exc.value.problems) == 4


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "upstream:\n  url: http://a:1\n")
    env = {"CRM_GATEWAY__UPSTREAM__URL": "http://b:2", "CRM_GATEWAY__LISTEN__WORKERS": "2"}
    s = load_settings(cfg, environ=env)
    assert s.upstream.url == "http://b:2"
    assert s.listen.workers == 2


def test_production_without_redis_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, "environment: production\nupstream:\n  url: http://a:1\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert "redis.url" in exc.value.problems[0]


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [\n"), environ={})


def test_overrides_are_revalidated(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "upstream:\n  url: http://a:1\n"), environ={})
    with pytest.raises(ConfigError):
        s.with_overrides(**{"listen.port": 70000})
    assert s.with_overrides(**{"listen.port": 9}).listen.port == 9
