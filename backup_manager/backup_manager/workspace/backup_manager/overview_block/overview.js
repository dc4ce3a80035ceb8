// Backup Manager workspace block (a Custom HTML Block; `root_element` is its shadow root).
// Shows what a quick list cannot: each policy's real state, recent runs with time, size and
// status, and the watchdog's red banner with the fix.
(function () {
	const esc = (value) => frappe.utils.escape_html(value == null ? "" : String(value));
	const colours = {
		Success: "green",
		Failed: "red",
		Partial: "orange",
		Running: "blue",
		Uploading: "blue",
		"Waiting for a slot": "yellow",
		Queued: "gray",
		Skipped: "gray",
	};
	const pill = (label, colour, attrs = "") =>
		`<span class="indicator-pill ${colour}" ${attrs}>${esc(label)}</span>`;
	const age = (seconds) => {
		if (seconds == null) return __("never");
		const units = [
			[86400, __("d")],
			[3600, __("h")],
			[60, __("min")],
		];
		for (const [size, unit] of units) {
			if (seconds >= size) return `${Math.floor(seconds / size)} ${unit} ${__("ago")}`;
		}
		return __("just now");
	};
	const when = (value) => (value ? frappe.datetime.str_to_user(value) : "");
	const link = (doctype, name) =>
		`<a href="/app/${frappe.router.slug(doctype)}/${encodeURIComponent(name)}">${esc(name)}</a>`;

	function render_banner(problems) {
		const banner = root_element.querySelector(".bm-banner");
		if (!problems.length) {
			banner.hidden = true;
			return;
		}
		banner.innerHTML = `<b>${esc(__("Backups will not run as scheduled:"))}</b><ul>${problems
			.map(
				(problem) =>
					`<li data-check="${esc(problem.check)}"><b>${esc(problem.message)}</b><br>
					<span class="bm-fix">${esc(__("Fix"))}: ${esc(problem.fix)}</span></li>`
			)
			.join("")}</ul>`;
		banner.hidden = false;
	}

	function render_policies(policies) {
		const body = policies.length
			? policies
					.map(
						(policy) => `<tr data-policy="${esc(policy.name)}">
				<td>${link("Backup Policy", policy.name)}</td>
				<td class="bm-enabled">${
					policy.enabled
						? pill(__("Enabled"), "green", 'data-state="enabled"')
						: pill(__("Disabled"), "gray", 'data-state="disabled"')
				}</td>
				<td class="bm-last-status">${
					policy.last_status
						? pill(__(policy.last_status), colours[policy.last_status] || "gray")
						: pill(__("Never run"), "gray")
				}</td>
				<td class="bm-age" title="${esc(when(policy.last_success_at))}">${esc(
							age(policy.last_success_age_seconds)
						)}</td>
				<td>${esc(when(policy.next_run_at))}</td>
			</tr>`
					)
					.join("")
			: `<tr><td class="text-muted">${esc(__("No Backup Policy yet."))}</td></tr>`;
		root_element.querySelector(".bm-policies").innerHTML = `<thead><tr>
			<th>${esc(__("Policy"))}</th><th>${esc(__("State"))}</th><th>${esc(__("Last Run"))}</th>
			<th>${esc(__("Last Good Backup"))}</th><th>${esc(__("Next Run"))}</th></tr></thead>
			<tbody>${body}</tbody>`;
	}

	function render_runs(runs) {
		const body = runs.length
			? runs
					.map(
						(run) => `<tr data-backup-log="${esc(run.name)}">
				<td>${link("Backup Log", run.name)}</td>
				<td>${esc(run.policy)}</td>
				<td>${pill(__(run.status), colours[run.status] || "gray")}</td>
				<td>${esc(when(run.started_at || run.queued_at))}</td>
				<td>${esc(run.total_size_human || "")}</td>
				<td>${run.duration ? esc(format_duration(run.duration)) : ""}</td>
			</tr>`
					)
					.join("")
			: `<tr><td class="text-muted">${esc(__("No runs yet."))}</td></tr>`;
		root_element.querySelector(".bm-runs").innerHTML = `<thead><tr>
			<th>${esc(__("Backup Log"))}</th><th>${esc(__("Policy"))}</th><th>${esc(__("Status"))}</th>
			<th>${esc(__("Time"))}</th><th>${esc(__("Size"))}</th><th>${esc(__("Duration"))}</th></tr></thead>
			<tbody>${body}</tbody>`;
	}

	function format_duration(seconds) {
		seconds = Math.round(seconds);
		const minutes = Math.floor(seconds / 60);
		return minutes ? `${minutes} min ${seconds % 60} s` : `${seconds} s`;
	}

	frappe.call({ method: "backup_manager.api.get_overview" }).then((r) => {
		const data = r.message || { policies: [], runs: [], problems: [] };
		render_banner(data.problems);
		render_policies(data.policies);
		render_runs(data.runs);
		root_element.querySelector(".bm-overview").dataset.loaded = "1";
	});
})();
