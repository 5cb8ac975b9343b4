"""Events get a `data_type` column (status name / custom type) so queries stop matching JSON text.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("data_type", sa.String(128), nullable=True))
    # Backfill from the stored JSON (top-level keys only, strings only), in the database.
    if op.get_bind().dialect.name == "postgresql":
        status = "data_json::jsonb ->> 'status'"
        custom = "data_json::jsonb ->> 'type'"
        is_text = "jsonb_typeof(data_json::jsonb -> '{key}') = 'string'"
    else:
        status = "json_extract(data_json, '$.status')"
        custom = "json_extract(data_json, '$.type')"
        is_text = "json_type(data_json, '$.{key}') = 'text'"
    for kind, key, value in (("status", "status", status), ("custom", "type", custom)):
        op.execute(
            f"UPDATE events SET data_type = {value} WHERE kind = '{kind}' "
            f"AND {is_text.format(key=key)} AND length({value}) <= 128"
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("data_type")
