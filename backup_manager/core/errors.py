"""Errors raised by the frappe-free core.

The Frappe layer translates them at the boundary: a Desk message, or red CLI text
and a non-zero exit.
"""


class BackupManagerError(Exception):
	"""Base of every error the core raises on purpose."""


class InvalidPolicy(BackupManagerError):
	"""A policy setting cannot be used; the message names the field and the fix."""

	def __init__(self, field: str, message: str):
		super().__init__(message)
		self.field = field


class ArtifactError(BackupManagerError):
	"""A backup artifact is missing, truncated or unreadable."""


class ChecksumMismatch(ArtifactError):
	"""An artifact's bytes no longer match the sha256 recorded when it was taken."""


class LocalFileChanged(ChecksumMismatch):
	"""The local file no longer matches the manifest; uploading it again cannot help."""


class EncryptionError(BackupManagerError):
	"""gpg is missing or failed to encrypt or decrypt an artifact."""


class StorageError(BackupManagerError):
	"""An offsite store refused or failed an operation."""


class ManifestNotAuthentic(BackupManagerError):
	"""A manifest does not verify with the site's manifest key, or names another site or backup."""


class UnsafePath(BackupManagerError):
	"""A target folder or file could be read, written or redirected by another user."""
