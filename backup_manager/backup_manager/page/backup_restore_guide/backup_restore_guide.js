frappe.pages["backup-restore-guide"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({
		parent: wrapper,
		title: __("Restore Guide"),
		single_column: true,
	});
	wrapper.restore_guide = new BackupRestoreGuide(page);
};

frappe.pages["backup-restore-guide"].on_page_show = function (wrapper) {
	// From a button (route options) or a shared link (?backup_log=...).
	const backup_log =
		(frappe.route_options && frappe.route_options.backup_log) ||
		frappe.utils.get_query_params().backup_log;
	frappe.route_options = null;
	if (backup_log) wrapper.restore_guide.fields.backup_log.set_value(backup_log);
};

class BackupRestoreGuide {
	constructor(page) {
		this.page = page;
		this.fields = {
			backup_log: page.add_field({
				fieldname: "backup_log",
				label: __("Backup Log"),
				fieldtype: "Link",
				options: "Backup Log",
				get_query: () => ({ filters: { status: ["in", ["Success", "Partial"]] } }),
				change: () => this.refresh(),
			}),
			new_site: page.add_field({
				fieldname: "new_site",
				label: __("New Site (leave empty to restore the same site)"),
				fieldtype: "Data",
				change: () => this.refresh(),
			}),
			destination: page.add_field({
				fieldname: "destination",
				label: __("Download From"),
				fieldtype: "Link",
				options: "Backup Destination",
				change: () => this.refresh(),
			}),
		};
		this.page.set_primary_action(__("Download Script"), () => this.download_script(), "download");
		this.$body = $('<div class="backup-restore-guide"></div>').appendTo(page.main);
		this.$body.html(
			`<p class="text-muted">${__("Pick a Backup Log to see the exact commands that restore it.")}</p>`
		);
	}

	refresh() {
		const backup_log = this.fields.backup_log.get_value();
		if (!backup_log) return;
		frappe
			.call({
				method: "backup_manager.api.get_restore_guide",
				args: {
					backup_log,
					new_site: this.fields.new_site.get_value() || null,
					destination: this.fields.destination.get_value() || null,
				},
			})
			.then((r) => {
				this.guide = r.message;
				this.render();
			});
	}

	render() {
		const { backup, plan } = this.guide;
		const esc = frappe.utils.escape_html;
		const apps = backup.apps
			.map((app) => `<li><code>${esc(app.app)}</code> ${esc(app.version)} ${esc(app.branch || "")} <span class="text-muted">${esc((app.commit || "").slice(0, 10))}</span></li>`)
			.join("");
		const artifacts = backup.artifacts
			.map(
				(artifact) =>
					`<tr><td>${esc(artifact.kind)}</td><td><code>${esc(artifact.file_name)}</code></td><td>${esc(
						artifact.size_human || ""
					)}</td><td><code class="small">${esc(artifact.sha256)}</code></td><td>${artifact.encrypted ? __("yes") : ""}</td></tr>`
			)
			.join("");
		const destinations = backup.destinations.length
			? backup.destinations.map((d) => `${esc(d.destination)} (${d.complete ? __("complete") : __("incomplete")})`).join(", ")
			: __("none (local only)");
		const app_checks = plan.app_checks
			.map((check) => {
				const colour = { ok: "green", missing: "red", downgrade: "orange" }[check.status] || "gray";
				return `<tr><td><code>${esc(check.app)}</code></td><td>${esc(check.backup_version)}</td><td>${esc(
					check.bench_version || "-"
				)}</td><td><span class="indicator-pill ${colour}">${esc(check.status)}</span></td><td><code>${esc(check.fix || "")}</code></td></tr>`;
			})
			.join("");
		const env_vars = plan.env_vars
			.map((v) => `<li><code>${esc(v.name)}</code>${v.required ? ` <b>${__("required")}</b>` : ""}: ${esc(v.description)}</li>`)
			.join("");
		const warnings = plan.warnings.map((w) => `<div class="alert alert-warning">${esc(w)}</div>`).join("");
		const steps = plan.steps
			.map((step, index) => {
				const commands = step.commands.join("\n");
				const step_warnings = step.warnings.map((w) => `<div class="text-warning small">${esc(w)}</div>`).join("");
				return `<div class="restore-step frappe-card p-3 mb-3" data-step="${esc(step.key)}">
					<h5>${index + 1}. ${esc(step.title)}</h5>
					<p class="text-muted">${esc(step.explanation)}</p>
					${step_warnings}
					${commands ? `<div class="position-relative"><button class="btn btn-xs btn-default copy-step" data-index="${index}" style="position:absolute;right:8px;top:8px">${__("Copy")}</button><pre class="restore-commands" style="padding-right:5rem"><code>${esc(commands)}</code></pre></div>` : ""}
					${step.on_failure ? `<p class="small"><b>${__("If this step fails")}:</b> ${esc(step.on_failure)}</p>` : ""}
				</div>`;
			})
			.join("");

		this.$body.html(`
			<div class="frappe-card p-3 mb-3 restore-summary">
				<h4>${esc(backup.name)}: ${esc(backup.site)} <span class="text-muted small">${esc(backup.started_at || "")}</span></h4>
				<p>${__("Policy")}: ${esc(backup.policy || "")} · ${__("Status")}: ${esc(backup.status)} · ${__("Size")}: ${esc(
			backup.total_size_human || ""
		)} · ${__("Encrypted")}: ${backup.encrypted ? __("yes") : __("no")} · ${__("Partial")}: ${backup.partial ? __("yes") : __("no")}</p>
				<p>${__("Local files")}: ${backup.local_files ? `<code>${esc(backup.backup_dir)}</code>` : __("deleted, download from a destination")} · ${__("Destinations")}: ${destinations}</p>
				<h5>${__("Apps in the backup")}</h5><ul>${apps}</ul>
				<table class="table table-bordered small"><thead><tr><th>${__("Artifact")}</th><th>${__("File")}</th><th>${__("Size")}</th><th>sha256</th><th>${__("Encrypted")}</th></tr></thead><tbody>${artifacts}</tbody></table>
			</div>
			${warnings}
			<div class="frappe-card p-3 mb-3">
				<h5>${__("This bench compared with the backup")}</h5>
				<table class="table table-bordered small app-checks"><thead><tr><th>${__("App")}</th><th>${__("In backup")}</th><th>${__("In this bench")}</th><th>${__("Status")}</th><th>${__("Fix")}</th></tr></thead><tbody>${app_checks}</tbody></table>
				<h5>${__("Secrets the commands read from the environment")}</h5>
				<ul>${env_vars || `<li>${__("none")}</li>`}</ul>
				<p class="small text-muted">${__("Run every command from the bench folder, as the bench user. Never interrupt a restore; if a step fails, follow its note and start again.")}</p>
			</div>
			<div class="restore-steps">${steps}</div>
		`);
		this.$body.find(".copy-step").on("click", (event) => {
			const step = plan.steps[$(event.currentTarget).data("index")];
			frappe.utils.copy_to_clipboard(step.commands.join("\n"));
		});
	}

	download_script() {
		if (!this.guide) {
			frappe.msgprint(__("Pick a Backup Log first."));
			return;
		}
		const blob = new Blob([this.guide.script], { type: "text/x-shellscript" });
		const link = document.createElement("a");
		link.href = URL.createObjectURL(blob);
		link.download = `restore-${this.guide.backup.name}.sh`;
		link.click();
		URL.revokeObjectURL(link.href);
	}
}
