"""What a restore plan is made of: its options, steps, environment variables and app checks."""

from dataclasses import dataclass, field

from backup_manager.core.storage import (
	STORAGE_FOLDER,
	STORAGE_SFTP,
	FolderConfig,
	SFTPConfig,
	StorageConfig,
)


@dataclass
class OffsiteSource:
	"""Where to download from when the files are not on this server."""

	destination_name: str
	prefix: str
	# "S3-compatible" (the next four fields), "SFTP" or "Folder" (the fields after them).
	storage_type: str = "S3-compatible"
	endpoint_url: str = ""
	region: str = ""
	bucket: str = ""
	addressing_style: str = "auto"
	sftp_host: str = ""
	sftp_port: int = 22
	sftp_username: str = ""
	base_folder: str = ""
	# The accepted host key, "<type> <base64>": public, so it may appear in the plan.
	host_key: str = ""
	folder_path: str = ""
	must_be_mount_point: bool = True

	@property
	def label(self) -> str:
		"""How the plan names the destination."""
		return self.destination_name or self.bucket or self.sftp_host or self.folder_path

	@classmethod
	def from_config(
		cls, config: StorageConfig, *, destination_name: str, prefix: str, addressing_style: str = ""
	) -> "OffsiteSource":
		"""The public settings of a destination's configuration (never a secret)."""
		if isinstance(config, SFTPConfig):
			return cls(
				destination_name=destination_name,
				prefix=prefix,
				storage_type=STORAGE_SFTP,
				sftp_host=config.host,
				sftp_port=config.port,
				sftp_username=config.username,
				base_folder=config.base_folder,
				host_key=config.host_key,
			)
		if isinstance(config, FolderConfig):
			return cls(
				destination_name=destination_name,
				prefix=prefix,
				storage_type=STORAGE_FOLDER,
				folder_path=config.path,
				must_be_mount_point=config.must_be_mount_point,
			)
		return cls(
			destination_name=destination_name,
			endpoint_url=config.resolved_endpoint_url(),
			region=config.resolved_region,
			bucket=config.bucket,
			prefix=prefix,
			addressing_style=addressing_style or config.addressing_style,
		)


@dataclass
class RestoreOptions:
	target_site: str
	new_site: bool = False
	# Absolute path of the bench the commands run from. Required in practice: bench commands run
	# from sites/, so a relative path would point somewhere else.
	bench_path: str = "."
	local_dir: str | None = None
	source: OffsiteSource | None = None
	download_dir: str = ""
	bench_apps: dict[str, str] | None = None
	production: bool = False
	db_root_username: str = ""
	# New sites come out of `bench restore` with the scheduler disabled; True enables it
	# (for a replacement site, not for a copy that must not send mail or run jobs twice).
	enable_scheduler: bool = False


@dataclass
class PlanStep:
	key: str
	title: str
	explanation: str
	commands: list[str] = field(default_factory=list)
	warnings: list[str] = field(default_factory=list)
	on_failure: str = ""


@dataclass
class EnvVar:
	name: str
	required: bool
	description: str


@dataclass
class AppCheck:
	app: str
	backup_version: str
	bench_version: str
	status: str
	fix: str = ""


@dataclass
class RestorePlan:
	backup_id: str
	site: str
	target_site: str
	new_site: bool
	steps: list[PlanStep] = field(default_factory=list)
	env_vars: list[EnvVar] = field(default_factory=list)
	warnings: list[str] = field(default_factory=list)
	app_checks: list[AppCheck] = field(default_factory=list)
	created_at: str = ""
	partial: bool = False
	encrypted: bool = False


@dataclass
class StepsWithWarnings:
	"""Steps in run order, and the plan-level warnings that building them raised, in order."""

	steps: list[PlanStep] = field(default_factory=list)
	warnings: list[str] = field(default_factory=list)
