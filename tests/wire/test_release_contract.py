"""Release targets and update status in the contract; signed manifests (palaute_wire.signing)."""

import json
from datetime import UTC, datetime

import pytest

from palaute_wire import contract as c
from palaute_wire import signing
from palaute_wire.surveys import default_station_config


def _manifest(**over) -> c.ReleaseManifest:
    base = {
        "version": "0.2.0", "requirements": ("palaute==0.2.0",), "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "files": [c.ReleaseFile(name="palaute-0.2.0-py3-none-any.whl", sha256="ab" * 32, size=1234)],
    }
    base.update(over)
    return c.ReleaseManifest(**base)


def test_a_config_with_a_release_target_round_trips_and_one_without_it_has_no_release_field():
    key = signing.new_private_key()
    text = signing.manifest_text(_manifest())
    target = c.ReleaseTarget(device_id="kalvia-1", version="0.2.0", url="https://fleet.example/kiosk/v1/releases/0.2.0/",
                             manifest=text, signature=signing.sign(key, text))
    config = default_station_config("kalvia").model_copy(update={"release": target})
    topic = c.topic("kalvia", "kalvia-1", "config")
    assert c.decode(topic, c.encode(config))[1] == config
    assert "release" not in json.loads(c.encode(default_station_config("kalvia")))
    assert signing.verify(signing.public_key_text(key), target.manifest, target.signature).version == "0.2.0"


def test_an_old_kiosks_status_without_update_fields_still_decodes_and_a_new_one_carries_them():
    topic = c.topic("kalvia", "kalvia-1", "status")
    old = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": True, "sent_at": "2026-12-01T08:00:00Z",
           "software_version": "0.1.0"}
    assert c.decode(topic, json.dumps(old).encode())[1].update_state is None
    new = {**old, "update_state": "rolled_back", "update_version": "0.3.0", "update_error": "no health within 60 s"}
    status = c.decode(topic, json.dumps(new).encode())[1]
    assert (status.update_state, status.update_version) == ("rolled_back", "0.3.0")
    with pytest.raises(c.ContractError):
        c.decode(topic, json.dumps({**old, "update_state": "exploded"}).encode())


def test_a_manifest_signed_by_another_key_unsigned_or_altered_is_refused():
    key, other = signing.new_private_key(), signing.new_private_key()
    text = signing.manifest_text(_manifest())
    public = signing.public_key_text(key)
    with pytest.raises(signing.ManifestRefused, match="not signed"):
        signing.verify(public, text, "")
    with pytest.raises(signing.ManifestRefused, match="does not match"):
        signing.verify(public, text, signing.sign(other, text))
    with pytest.raises(signing.ManifestRefused, match="does not match"):
        signing.verify(public, text.replace("1234", "1235"), signing.sign(key, text))


def test_a_manifest_limited_to_stations_or_devices_allows_only_them():
    m = _manifest(stations=("kalvia",), devices=())
    assert m.allows("kalvia", "kalvia-9") and not m.allows("kokkola", "kokkola-1")
    m = _manifest(devices=("kalvia-1",))
    assert m.allows("kalvia", "kalvia-1") and not m.allows("kalvia", "kalvia-2")


def test_release_versions_and_file_names_cannot_escape_a_directory():
    with pytest.raises(ValueError):
        _manifest(version="../../etc")
    with pytest.raises(ValueError):
        c.ReleaseFile(name="../evil.whl", sha256="ab" * 32, size=1)
