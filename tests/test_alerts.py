"""alerts.yaml and scripts/alerts.py: the automations `make server` creates, idempotently."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def alerts_module():
    spec = importlib.util.spec_from_file_location("linreg_alerts_script", ROOT / "scripts" / "alerts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_automation_in_the_file_is_a_valid_prefect_automation():
    from uuid import uuid4

    config = yaml.safe_load((ROOT / "alerts.yaml").read_text())
    module = alerts_module()
    built = [module.automation(d, uuid4(), enabled=True) for d in config["automations"]]
    expected = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "linreg.solver.diverged", "linreg.solver.failed",
                "linreg.solver.rank_deficient"}
    assert set().union(*(a.trigger.expect for a in built)) == expected
    assert all(a.actions[0].type == "send-notification" for a in built)


@pytest.mark.flow
def test_alerts_are_created_once_updated_in_place_and_off_without_a_url(prefect_server, monkeypatch):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    module = alerts_module()
    monkeypatch.delenv("LINREG_ALERT_WEBHOOK_URL", raising=False)
    assert module.apply(ROOT / "alerts.yaml").startswith("alerts: off (set LINREG_ALERT_WEBHOOK_URL")
    monkeypatch.setenv("LINREG_ALERT_WEBHOOK_URL", "http://127.0.0.1:8999/hook")
    assert module.apply(ROOT / "alerts.yaml").startswith("alerts: on, to http://127.0.0.1:8999/hook")
    module.apply(ROOT / "alerts.yaml")  # again: nothing is duplicated
    names = [d["name"] for d in yaml.safe_load((ROOT / "alerts.yaml").read_text())["automations"]]
    with get_client(sync_client=True) as client:
        found = [client.read_automations_by_name(name) for name in names]
    assert [len(f) for f in found] == [1] * len(names)
    assert all(f[0].enabled for f in found)
    block = CustomWebhookNotificationBlock.load("linreg-alerts")
    assert block.url == "http://127.0.0.1:8999/hook" and block.json_data["source"] == "linreg"
    with get_client(sync_client=True) as client:
        block_id = client.read_block_document_by_name("linreg-alerts", "custom-webhook").id
    assert all(f[0].actions[0].block_document_id == block_id for f in found)
