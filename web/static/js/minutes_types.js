// The minutes' wire types, declared once for both pages that read them (minutes.js, the
// editor; room/minutes.js, the room's panel). tests/minutes/test_entry_type.py checks `Entry`
// against what the server sends (meetings.minutes.service.entry_data).

/**
 * @typedef {{code: string, name: string}} UnitRef
 * @typedef {{id: number, minutes_id: number, position: number, kind: string, section: string,
 *   text: string, unit: UnitRef|null, category: string|null, severity: string|null,
 *   owner_unit: UnitRef|null, owner_person: {email: string, name: string}|null,
 *   due_date: string|null, link_id: number|null, status: string, version: number,
 *   raised_on: string, raised_by: string}} Entry
 * @typedef {{key: string, title: string, entries: Entry[]}} Section
 */

export {};
