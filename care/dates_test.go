package care_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"carefhir/care"
)

// TestUKDates: at 23:30 UTC on a night of British Summer Time it is
// already the next day in the UK, and today is that day: for overdue
// reviews, ages and the reminders due.
func TestUKDates(t *testing.T) {
	now := time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC) // 1 July, 00:30 BST
	eachEngine(t, care.Config{Now: func() time.Time { return now }}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"july","name":[{"family":"July"}],"birthDate":"1961-07-01","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		wardCareTeam(c)
		walkGoal(c)
		c.put(pcsp("active", "2026-06-30", "goal-walk"))

		// The review of 30 June is overdue on 1 July.
		checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"], map[string]any{"reviewDue": "2026-06-30", "overdue": true})

		// Born 1 July 1961: 65 today.
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},{"name":"ageMin","valueInteger":65},{"name":"ageMax","valueInteger":65}]}`).want(http.StatusCreated)
		if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != "Patient/july" {
			t.Errorf("aged 65 today: %q", got)
		}

		// A review on 15 July is within the 14 days of 1 July.
		c.put(pcsp("active", "2026-07-15", "goal-walk"))
		rem := c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Errorf("reminders as of today: %s", got)
		}
	})
}

// TestAgesOnLeapDay: on 29 February, someone born on 1 March of the year
// before has not completed a year, and someone born on 28 February has.
func TestAgesOnLeapDay(t *testing.T) {
	now := time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
	eachEngine(t, care.Config{Now: func() time.Time { return now }}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"feb","birthDate":"2027-02-28","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		c.put(`{"resourceType":"Patient","id":"mar","birthDate":"2027-03-01","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		for _, tc := range []struct{ params, members string }{
			{`{"name":"ageMin","valueInteger":1},{"name":"ageMax","valueInteger":1}`, "Patient/feb"},
			{`{"name":"ageMax","valueInteger":0}`, "Patient/mar"},
		} {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[`+tc.params+`]}`).want(http.StatusCreated)
			if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != tc.members {
				t.Errorf("%s on 29 February 2028: %q, want %q", tc.params, got, tc.members)
			}
		}
	})
}

// TestReviewMonth: a PCSP reviewed in a month (valueDate 2026-12, as a
// date may be given) is not overdue until that month is over.
func TestReviewMonth(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		walkGoal(c)
		for _, tc := range []struct {
			review  string
			overdue bool
		}{{"2026-12", false}, {"2026", false}, {"2026-11", true}, {"2025", true}} {
			c.put(pcsp("active", tc.review, "goal-walk"))
			checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"], map[string]any{"reviewDue": tc.review, "overdue": tc.overdue})
		}
	})
}

// TestAgesOfPartialBirthDates: a birth date of a year or a month alone is
// the range of its days, and a person is of an age only when every day of
// it gives that age: on 1 December 2026, someone born in 1961 or in
// December 1961 may be 64 or 65, and meets neither ageMin 65 nor ageMax
// 64, never both; someone born in June 1961 is 65.
func TestAgesOfPartialBirthDates(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, born := range map[string]string{"year": "1961", "december": "1961-12", "june": "1961-06"} {
			c.put(`{"resourceType":"Patient","id":"` + id + `","birthDate":"` + born + `","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		}
		for _, tc := range []struct{ params, members string }{
			{`{"name":"ageMin","valueInteger":65}`, "Patient/clark Patient/june Patient/lee Patient/ward"},
			{`{"name":"ageMax","valueInteger":64}`, "Patient/baker"},
			{`{"name":"ageMin","valueInteger":64},{"name":"ageMax","valueInteger":65}`, "Patient/december Patient/june Patient/year"},
		} {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[`+tc.params+`]}`).want(http.StatusCreated)
			if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != tc.members {
				t.Errorf("%s: %q, want %q", tc.params, got, tc.members)
			}
		}
	})
}

// TestReviewMonthGivenItsDay: the review reminder of a PCSP reviewed in a
// month stays open when the plan is given the day in that month it is
// reviewed on, since the review is still to be done, due on that day; a
// review brought forward brings the reminder's due date with it; the
// reminder is done once the review date moves past it.
func TestReviewMonthGivenItsDay(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		walkGoal(c)
		c.put(pcsp("active", "2026-12", "goal-walk"))
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s", got)
		}
		status := func() string {
			tasks := entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK))
			if len(tasks) != 1 {
				t.Fatalf("%d reminders, want 1", len(tasks))
			}
			return str(tasks[0], "status") + " " + str(tasks[0], "restriction", "period", "end")
		}
		c.put(pcsp("active", "2026-12-20", "goal-walk"))
		if got := status(); got != "requested 2026-12-20" {
			t.Errorf("reminder after the review was given its day in the month: %s, want requested 2026-12-20", got)
		}
		c.put(pcsp("active", "2026-12-05", "goal-walk"))
		if got := status(); got != "requested 2026-12-05" {
			t.Errorf("reminder after the review was brought forward: %s, want requested 2026-12-05", got)
		}
		c.put(pcsp("active", "2027-06-01", "goal-walk"))
		if got := status(); got != "completed 2026-12-05" {
			t.Errorf("reminder after the review moved past it: %s, want completed 2026-12-05", got)
		}
	})
}
