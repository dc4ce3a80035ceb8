app_name = "backup_manager"
app_title = "Backup Manager"
app_publisher = "Backup Manager Contributors"
app_description = "Production-grade backups for Frappe and ERPNext sites: policies, verified offsite copies, retention and tested restores"
app_email = "maintainers@backup-manager.invalid"
app_license = "MIT"

export_python_type_annotations = True

# One tick a minute: it only reads policies and enqueues; the work runs on the long queue.
scheduler_events = {
	"cron": {
		"* * * * *": ["backup_manager.jobs.tick"],
	},
}

before_migrate = ["backup_manager.migrate.backup_before_migrate"]
after_migrate = ["backup_manager.install.sync_overview_block"]

after_install = "backup_manager.install.after_install"

before_uninstall = "backup_manager.install.before_uninstall"
