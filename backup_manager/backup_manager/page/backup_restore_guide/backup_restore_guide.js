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
	if (!backup_log) return;
	const restore_guide = wrapper.restore_guide;
	if (restore_guide.fields.backup_log.get_value() === backup_log) {
		// The same Backup Log again: load it afresh, its uploads or local files may have changed.
		restore_guide.refresh(true);
	} else {
		restore_guide.fields.backup_log.set_value(backup_log);
	}
};

class BackupRestoreGuide {
	constructor(page) {
		this.page = page;
		// Every refresh takes a new number; an answer that is not for the latest number is
		// dropped, so a slow answer for earlier options never replaces the current guide.
		this.last_request = 0;
		this.loading_key = null;
		// The guide on screen and the options it was built for, or the error of the last load.
		this.guide = null;
		this.guide_key = null;
		this.error = null;
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
		this.$download_button = this.page.set_primary_action(
			__("Download Script"),
			() => {
				this.download_script();
			},
			"download"
		);
		this.$body = $('<div class="backup-restore-guide"></div>').appendTo(page.main);
		this.show_placeholder();
	}

	get_options() {
		return {
			backup_log: this.fields.backup_log.get_value() || null,
			new_site: this.fields.new_site.get_value() || null,
			destination: this.fields.destination.get_value() || null,
		};
	}

	options_key(options) {
		return JSON.stringify([options.backup_log, options.new_site, options.destination]);
	}

	refresh(force = false) {
		const options = this.get_options();
		const key = this.options_key(options);
		// A Data field reports one edit twice (debounced input, then blur): when the options
		// are the ones already loading or shown, there is nothing new to ask for.
		const shown_key = this.guide_key || (this.error && this.error.key);
		if (!force && (key === this.loading_key || key === shown_key)) return;

		const request = ++this.last_request;
		this.guide = null;
		this.guide_key = null;
		this.error = null;
		if (!options.backup_log) {
			this.set_loading(null);
			this.show_placeholder();
			return;
		}
		this.set_loading(key);
		this.$body.html(
			`<p class="text-muted restore-guide-loading">${__("Loading the Restore Guide…")}</p>`
		);
		frappe
			.call({
				method: "backup_manager.api.get_restore_guide",
				args: options,
				// The error is shown in the page (and by Download Script), not in a dialog too.
				silent: true,
			})
			.then(
				(r) => {
					if (request !== this.last_request) return;
					this.set_loading(null);
					try {
						this.render(r.message);
					} catch (error) {
						console.error(error); // eslint-disable-line no-console
						this.show_error(key, __("The Restore Guide could not be shown."));
						return;
					}
					this.guide = r.message;
					this.guide_key = key;
				},
				(xhr) => {
					if (request !== this.last_request) return;
					this.set_loading(null);
					this.show_error(key, get_error_message(xhr));
				}
			);
	}

	set_loading(key) {
		this.loading_key = key;
		this.$download_button.prop("disabled", Boolean(key));
	}

	show_placeholder() {
		this.$body.html(
			`<p class="text-muted">${__(
				"Pick a Backup Log to see the exact commands that restore it."
			)}</p>`
		);
	}

	show_error(key, message) {
		this.guide = null;
		this.guide_key = null;
		this.error = { key, message };
		this.$body.html(
			`<div class="alert alert-danger restore-guide-error">${frappe.utils.escape_html(
				message
			)}</div><button class="btn btn-default btn-sm restore-guide-retry">${__(
				"Try Again"
			)}</button>`
		);
		this.$body.find(".restore-guide-retry").on("click", () => this.refresh(true));
	}

	render(guide) {
		const { backup, plan } = guide;
		const esc = frappe.utils.escape_html;
		const apps = backup.apps
			.map(
				(app) =>
					`<li><code>${esc(app.app)}</code> ${esc(app.version)} ${esc(
						app.branch || ""
					)} <span class="text-muted">${esc(
						(app.commit || "").slice(0, 10)
					)}</span></li>`
			)
			.join("");
		const artifacts = backup.artifacts
			.map(
				(artifact) =>
					`<tr><td>${esc(artifact.kind)}</td><td><code>${esc(
						artifact.file_name
					)}</code></td><td>${esc(
						artifact.size_human || ""
					)}</td><td><code class="small">${esc(artifact.sha256)}</code></td><td>${
						artifact.encrypted ? __("yes") : ""
					}</td></tr>`
			)
			.join("");
		const destinations = backup.destinations.length
			? backup.destinations
					.map(
						(d) =>
							`${esc(d.destination)} (${
								d.complete ? __("complete") : __("incomplete")
							})`
					)
					.join(", ")
			: __("none (local only)");
		const app_checks = plan.app_checks
			.map((check) => {
				const colour =
					{ ok: "green", missing: "red", downgrade: "orange" }[check.status] || "gray";
				return `<tr><td><code>${esc(check.app)}</code></td><td>${esc(
					check.backup_version
				)}</td><td>${esc(
					check.bench_version || "-"
				)}</td><td><span class="indicator-pill ${colour}">${esc(
					check.status
				)}</span></td><td><code>${esc(check.fix || "")}</code></td></tr>`;
			})
			.join("");
		const env_vars = plan.env_vars
			.map(
				(v) =>
					`<li><code>${esc(v.name)}</code>${
						v.required ? ` <b>${__("required")}</b>` : ""
					}: ${esc(v.description)}</li>`
			)
			.join("");
		const warnings = plan.warnings
			.map((w) => `<div class="alert alert-warning">${esc(w)}</div>`)
			.join("");
		const steps = plan.steps
			.map((step, index) => {
				const commands = step.commands.join("\n");
				const step_warnings = step.warnings
					.map((w) => `<div class="text-warning small">${esc(w)}</div>`)
					.join("");
				return `<div class="restore-step frappe-card p-3 mb-3" data-step="${esc(
					step.key
				)}">
					<h5>${index + 1}. ${esc(step.title)}</h5>
					<p class="text-muted">${esc(step.explanation)}</p>
					${step_warnings}
					${
						commands
							? `<div class="position-relative"><button class="btn btn-xs btn-default copy-step" data-index="${index}" style="position:absolute;right:8px;top:8px">${__(
									"Copy"
							  )}</button><pre class="restore-commands" style="padding-right:5rem"><code>${esc(
									commands
							  )}</code></pre></div>`
							: ""
					}
					${
						step.on_failure
							? `<p class="small"><b>${__("If this step fails")}:</b> ${esc(
									step.on_failure
							  )}</p>`
							: ""
					}
				</div>`;
			})
			.join("");

		this.$body.html(`
			<div class="frappe-card p-3 mb-3 restore-summary">
				<h4>${esc(backup.name)}: ${esc(backup.site)} <span class="text-muted small">${esc(
					backup.started_at || ""
				)}</span></h4>
				<p>${__("Policy")}: ${esc(backup.policy || "")} · ${__("Status")}: ${esc(backup.status)} · ${__(
					"Size"
				)}: ${esc(backup.total_size_human || "")} · ${__("Encrypted")}: ${
					backup.encrypted ? __("yes") : __("no")
				} · ${__("Partial")}: ${backup.partial ? __("yes") : __("no")}</p>
				<p>${__("Local files")}: ${
					backup.local_files
						? `<code>${esc(backup.backup_dir)}</code>`
						: __("deleted, download from a destination")
				} · ${__("Destinations")}: ${destinations}</p>
				<h5>${__("Apps in the backup")}</h5><ul>${apps}</ul>
				<table class="table table-bordered small"><thead><tr><th>${__("Artifact")}</th><th>${__(
					"File"
				)}</th><th>${__("Size")}</th><th>sha256</th><th>${__(
					"Encrypted"
				)}</th></tr></thead><tbody>${artifacts}</tbody></table>
			</div>
			${warnings}
			<div class="frappe-card p-3 mb-3">
				<h5>${__("This bench compared with the backup")}</h5>
				<table class="table table-bordered small app-checks"><thead><tr><th>${__("App")}</th><th>${__(
					"In backup"
				)}</th><th>${__("In this bench")}</th><th>${__("Status")}</th><th>${__(
					"Fix"
				)}</th></tr></thead><tbody>${app_checks}</tbody></table>
				<h5>${__("Secrets the commands read from the environment")}</h5>
				<ul>${env_vars || `<li>${__("none")}</li>`}</ul>
				<p class="small keep-keys-offsite">${__(
					"Keep two keys of this site offsite, together and away from the bucket (a password manager or a sealed envelope): backup_manager_manifest_key (BACKUP_MANIFEST_KEY: proves a backup in the bucket was written by this site) and backup_encryption_key (BACKUP_ENCRYPTION_KEY). Both are in sites/{0}/site_config.json; without them a bucket is all that is left and a restore can neither verify nor decrypt it.",
					[esc(backup.site)]
				)}</p>
				<p class="small text-muted">${__(
					"Run every command from the bench folder, as the bench user. Never interrupt a restore; if a step fails, follow its note and start again. The downloaded script runs every step in order; commands naming require_decrypted or with_fast_gunzip use helpers defined at its top, so paste that part first when you run steps by hand."
				)}</p>
				<p class="small text-muted restore-guide-fast-path">${__(
					"These steps give the same site as bench new-site, bench restore with both file archives and bench migrate, in less time: a new site is created straight from the dump (bench new-site --source-sql, the call bench restore itself makes, without a blank install first), the same site is restored and migrated by Frappe's own restore and migrate commands in one bench process, the file archives are unpacked with plain tar after every member is checked, and each file is verified once against the manifest (not again after a download that verified it). Each step says what it replaces."
				)}</p>
			</div>
			<div class="restore-steps">${steps}</div>
		`);
		this.$body.find(".copy-step").on("click", (event) => {
			const step = plan.steps[$(event.currentTarget).data("index")];
			frappe.utils.copy_to_clipboard(step.commands.join("\n"));
		});
	}

	download_script() {
		// The script must be the one for the options in the fields now, never an older guide's.
		const options = this.get_options();
		const key = this.options_key(options);
		if (!options.backup_log) {
			frappe.msgprint(__("Pick a Backup Log first."));
		} else if (this.error && this.error.key === key) {
			frappe.msgprint({
				title: __("No script for these options"),
				indicator: "red",
				message: `<div class="restore-guide-error">${frappe.utils.escape_html(
					this.error.message
				)}</div>`,
			});
		} else if (!this.guide || this.guide_key !== key) {
			frappe.msgprint({
				title: __("No script for these options"),
				indicator: "orange",
				message: __(
					"The Restore Guide for these options has not loaded yet. Wait until it shows, then download the script."
				),
			});
		} else {
			save_script(this.guide);
		}
	}
}

function save_script(guide) {
	const blob = new Blob([guide.script], { type: "text/x-shellscript" });
	const url = URL.createObjectURL(blob);
	const link = document.createElement("a");
	link.href = url;
	link.download = `restore-${guide.backup.name}.sh`;
	link.click();
	// The download reads the URL after click() returns: revoke it a little later.
	setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function get_error_message(xhr) {
	// A frappe.throw arrives as _server_messages: a JSON list of JSON objects with HTML messages.
	const response = (xhr && xhr.responseJSON) || {};
	const messages = [];
	try {
		for (const entry of JSON.parse(response._server_messages || "[]")) {
			const parsed = typeof entry === "string" ? JSON.parse(entry) : entry;
			messages.push(typeof parsed === "string" ? parsed : parsed.message);
		}
	} catch (error) {
		// Not Frappe's format: fall back to the generic message below.
	}
	if (response._error_message) messages.push(response._error_message);
	// DOMParser turns the HTML into text without running scripts or loading images.
	const text = messages
		.filter(Boolean)
		.map((message) => new DOMParser().parseFromString(message, "text/html").body.textContent)
		.join(" ")
		.trim();
	if (text) return text;
	if (xhr && xhr.status === 0) {
		return __("The server could not be reached. Check the connection, then try again.");
	}
	return __(
		"The Restore Guide could not be loaded (HTTP {0}). Check the options and try again.",
		[xhr && xhr.status]
	);
}
