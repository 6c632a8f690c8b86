"""``breach export``: an incident for compliance, as PDF, CSV, JSON or a verifiable bundle."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from breachflow.cli.common import Key, actor, console, errors


class Format(StrEnum):
    """The formats of ``flows.export.ExportFormat``, repeated here so that ``breach --help``
    does not import the export module (and its templates) for every command."""

    PDF = "pdf"
    CSV = "csv"
    JSON = "json"
    BUNDLE = "bundle"


def export(
    key: Key,
    format_: Annotated[
        Format,
        typer.Option(
            "--format",
            help="pdf: the incident report; csv: the timeline for spreadsheets; json: "
            "incident, ledger counts and timeline with hashes; bundle: a zip of the JSON, "
            "the regulator reports and announcements, with a manifest to verify offline.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="File (or folder) to write; default: <home>/exports/<INC>/."),
    ] = None,
) -> None:
    """Export an incident for compliance; the export is recorded on its timeline."""
    from breachflow.flows.export.write import ExportFormat, export_incident

    result = export_incident(key, ExportFormat(format_.value), out, actor())
    console.print(
        f"{key.strip().upper()}: {result.format} export written to {result.path}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  SHA-256 {result.sha256}", highlight=False)
    if result.format == ExportFormat.BUNDLE:
        console.print(
            f"  timeline head {result.head or '— (no events)'} ({result.events} events); "
            f"check it with: breach audit verify --bundle {result.path}",
            highlight=False,
            soft_wrap=True,
        )
    for warning in result.warnings:
        errors.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
