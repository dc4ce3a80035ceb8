frappe.listview_settings["Backup Policy"] = {
	add_fields: ["last_status", "enabled"],
	get_indicator(doc) {
		if (!doc.enabled) return [__("Disabled"), "gray", "enabled,=,0"];
		const colours = {
			Success: "green",
			Failed: "red",
			Partial: "orange",
			Running: "blue",
			Uploading: "blue",
			"Waiting for a slot": "yellow",
			Queued: "gray",
		};
		if (!doc.last_status) return [__("Never run"), "gray", "last_status,is,not set"];
		return [
			__(doc.last_status),
			colours[doc.last_status] || "gray",
			`last_status,=,${doc.last_status}`,
		];
	},
};
