"""Create the notification block and automations of alerts.yaml on the Prefect server, idempotently.

Run by scripts/server.sh (`make server`) with PREFECT_API_URL pointing at the
server. Each automation is found by name and updated in place, or created;
duplicates by name are removed. With the webhook URL's variable unset, the
automations are disabled, so a server never sends alerts to a stale address.

    python scripts/alerts.py [alerts.yaml]
"""

import os
import sys
from pathlib import Path

import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore

ROOT = Path(__file__).resolve().parents[1]


def save_block(spec: dict, url: str | None):
    """The webhook block, saved (overwritten) under its name; returns its document id."""
    block = CustomWebhookNotificationBlock(
        name=spec["name"], url=url or "http://127.0.0.1:9/alerts-off", method=spec.get("method", "POST"),
        json_data=spec.get("json_data"),
    )
    return block.save(spec["name"], overwrite=True)


def automation(definition: dict, block_id, enabled: bool) -> AutomationCore:
    actions = [{**action, "block_document_id": str(block_id)} if action["type"] == "send-notification" else action
               for action in definition["actions"]]
    return AutomationCore.model_validate({**definition, "actions": actions, "enabled": enabled})


def apply(path: Path) -> str:
    """Create or update everything in `path`; return one line saying what was done."""
    config = yaml.safe_load(path.read_text())
    block = config["block"]
    url = os.environ.get(block["url_env"]) or None
    block_id = save_block(block, url)
    with get_client(sync_client=True) as client:
        for definition in config["automations"]:
            wanted = automation(definition, block_id, enabled=url is not None)
            existing = client.read_automations_by_name(wanted.name)
            for extra in existing[1:]:
                client.delete_automation(extra.id)
            if existing:
                client.update_automation(existing[0].id, wanted)
            else:
                client.create_automation(wanted)
    names = ", ".join(repr(d["name"]) for d in config["automations"])
    if url is None:
        return f"alerts: off (set {block['url_env']} to a webhook URL and run make server again); automations {names} disabled"
    return f"alerts: on, to {url} (block {block['name']}); automations {names}"


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "alerts.yaml"
    print(apply(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
