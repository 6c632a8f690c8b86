"""Turning our data into what a person reads: notices, letters, pages, reports and PDFs.

Notifiers, flows, the pages and the exports all render through here, so a template, a
font or a PDF setting has one home.
"""
